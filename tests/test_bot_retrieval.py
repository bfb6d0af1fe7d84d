"""The bot answers by retrieval over the knowledge base (issue 14, item 4): rewordings and typos
get the right answer, questions it cannot answer get the fallback (which offers a person),
several questions in one message get one answer each, and requests for a person stay
recognised. Exact texts, as the customer reads them."""

from __future__ import annotations

from pathlib import Path

import pytest

from handoff.bot import KnowledgeBaseBot, KnowledgeBaseError, questions_in
from handoff.retrieval import TextIndex, stem, words

PASSWORD = (
    'You can reset your password from the sign-in page: choose "Forgot password?" and follow the link we email '
    "you. The link is valid for one hour."
)
TRACKING = "You can follow your delivery under Orders → Track. Parcels usually arrive within 2 to 4 business days."
INVOICE = "Invoices are under Settings → Billing → Invoices, where you can download each one as a PDF."
SHIPPING = "Shipping is free on orders over €50; below that it costs €4.90 within the EU."
FALLBACK = (
    'Sorry, I don\'t know the answer to that yet. You can rephrase, or say "talk to a human" and a member of our '
    "team will help."
)
HANDOFF = "Sure, I'm connecting you with a member of our team. Someone will be with you shortly."


@pytest.fixture(scope="module")
def bot() -> KnowledgeBaseBot:
    return KnowledgeBaseBot.from_file()


@pytest.mark.parametrize(
    ("message", "expected"),
    [
        ("I lost my password", PASSWORD),  # no pattern matches: found by retrieval
        ("my parcel never arrived", TRACKING),
        ("how much is delivery to Spain", SHIPPING),
        ("i forgot my pasword", PASSWORD),  # a typo, corrected
    ],
)
def test_a_reworded_or_misspelt_question_gets_the_right_answer(
    bot: KnowledgeBaseBot, message: str, expected: str
) -> None:
    reply = bot.answer(message)
    assert reply.text == expected
    assert not reply.wants_human


@pytest.mark.parametrize(
    "message",
    [
        "Does my warranty cover accidental damage to the screen?",
        "Do you sell gift cards?",  # shares "card" with the payment examples: not enough
        "Is the app available on Android?",  # shares "available" with the opening hours
        "my card is 4111",
        "wrong",  # one content word: patterns only
        "what did I say?",
    ],
)
def test_a_question_the_knowledge_base_cannot_answer_gets_the_fallback(bot: KnowledgeBaseBot, message: str) -> None:
    assert bot.answer(message).text == FALLBACK


def test_each_question_in_a_message_gets_its_answer_in_order(bot: KnowledgeBaseBot) -> None:
    reply = bot.answer("I forgot my password. Also, where can I find my invoice?")
    assert reply.text == f"{PASSWORD}\n\n{INVOICE}"
    # The same answer twice is said once.
    assert bot.answer("Where is my order? Where is my parcel?").text == TRACKING


def test_small_talk_gives_way_to_a_real_answer(bot: KnowledgeBaseBot) -> None:
    assert bot.answer("Hi! Where is my package?").text == TRACKING
    assert bot.answer("Hello").text == "Hello! How can I help you today?"


def test_a_request_for_a_person_is_recognised_first(bot: KnowledgeBaseBot) -> None:
    reply = bot.answer("Where is my order? I want to talk to a human")
    assert reply.text == HANDOFF and reply.wants_human


def test_the_message_is_cut_into_at_most_five_questions() -> None:
    assert questions_in("a? b. c! d\ne") == ["a?", "b.", "c!", "d", "e"]
    assert questions_in("1? 2? 3? 4? 5? 6? 7?") == ["1?", "2?", "3?", "4?", "5? 6? 7?"]
    assert questions_in("?!... \n") == []


def test_a_team_knowledge_base_of_examples_only_works_the_same_way(tmp_path: Path) -> None:
    path = tmp_path / "kb.toml"
    path.write_text(
        'fallback = "No idea."\nhandoff_answer = "Connecting you."\nhuman_request_patterns = ["\\\\bhuman\\\\b"]\n'
        "confidence_threshold = 0.3\n"
        '[[answers]]\nanswer = "Bikes ship in 3 days."\n'
        'examples = ["when does my bike ship", "bike delivery time", "how long until the bicycle arrives"]\n',
        encoding="utf-8",
    )
    bot = KnowledgeBaseBot.from_file(path)
    assert bot.answer("how long does bike delivery take?").text == "Bikes ship in 3 days."
    assert bot.answer("do you repair bikes").text == "No idea."


@pytest.mark.parametrize("threshold", ["0", "1.5", "-0.2"])
def test_a_threshold_outside_zero_to_one_is_refused_at_load(tmp_path: Path, threshold: str) -> None:
    path = tmp_path / "kb.toml"
    path.write_text(
        f'fallback = "x"\nhandoff_answer = "y"\nhuman_request_patterns = []\nconfidence_threshold = {threshold}\n',
        encoding="utf-8",
    )
    with pytest.raises(KnowledgeBaseError, match="confidence_threshold must be in"):
        KnowledgeBaseBot.from_file(path)


def test_retrieval_folds_endings_corrects_one_edit_and_ignores_numbers() -> None:
    assert words("Refunds refunded, 1234 orders!") == ["refund", "refund", "order"]
    assert stem("address") == "address" and stem("parcels") == "parcel"
    index = TextIndex(["reset the password", "track the package"])
    assert index.correct("pasword") == "password"
    assert index.correct("pakcage") == "package"  # two letters swapped
    assert index.correct("pwd") is None  # too short to guess
    hits = index.search("passwrod reset")
    assert [h.index for h in hits] == [0] and hits[0].score > 0.8


def test_a_reply_is_matched_to_a_suggestion_by_its_content_words() -> None:
    from handoff.assist import EDITED_SIMILARITY, USED_SIMILARITY, similarity

    suggestion = "You can reset your password from the sign-in page."
    assert similarity("you can RESET your password from the sign-in page!", suggestion) >= USED_SIMILARITY
    edited = similarity("Reset your password from the sign-in page, then check your mailbox.", suggestion)
    assert EDITED_SIMILARITY <= edited < USED_SIMILARITY
    assert similarity("Your parcel arrives tomorrow.", suggestion) < EDITED_SIMILARITY
