"""An update the server aborted ("workflow not ready": the workflow task carrying it failed, or the
run continued as new under it) is sent again under its id, so an agent or a customer does not see
a passing hiccup as an error. Seen here: `test_continue_as_new` under load failed with "Unable to
perform workflow execution update due to unexpected workflow task failure"."""

from __future__ import annotations

import pytest
from temporalio.api.common.v1 import GrpcStatus
from temporalio.api.errordetails.v1 import WorkflowNotReadyFailure
from temporalio.service import RPCError, RPCStatusCode

from handoff.client import UPDATE_ATTEMPTS, retry_workflow_not_ready, workflow_not_ready

ABORTED = "Unable to perform workflow execution update due to unexpected workflow task failure."


def not_ready() -> RPCError:
    """The error as the server sends it: FAILED_PRECONDITION with a WorkflowNotReadyFailure detail."""
    status = GrpcStatus(code=RPCStatusCode.FAILED_PRECONDITION.value, message=ABORTED)
    status.details.add().Pack(WorkflowNotReadyFailure())
    return RPCError(ABORTED, RPCStatusCode.FAILED_PRECONDITION, status.SerializeToString())


def other_precondition() -> RPCError:
    status = GrpcStatus(code=RPCStatusCode.FAILED_PRECONDITION.value, message="something else")
    return RPCError("something else", RPCStatusCode.FAILED_PRECONDITION, status.SerializeToString())


def test_only_workflow_not_ready_is_recognised() -> None:
    assert workflow_not_ready(not_ready())
    assert not workflow_not_ready(other_precondition())
    assert not workflow_not_ready(RPCError("gone", RPCStatusCode.NOT_FOUND, b""))


class Calls:
    """A call that fails with the given errors first, then answers."""

    def __init__(self, *errors: RPCError) -> None:
        self.errors = list(errors)
        self.count = 0

    async def __call__(self) -> str:
        self.count += 1
        if self.errors:
            raise self.errors.pop(0)
        return "applied"


async def test_an_aborted_update_is_sent_again_until_it_is_answered() -> None:
    call = Calls(not_ready(), not_ready())
    assert await retry_workflow_not_ready(call) == "applied"
    assert call.count == 3


async def test_it_gives_up_after_its_attempts() -> None:
    call = Calls(*(not_ready() for _ in range(UPDATE_ATTEMPTS)))
    with pytest.raises(RPCError, match="unexpected workflow task failure"):
        await retry_workflow_not_ready(call, attempts=3)
    assert call.count == 3


async def test_any_other_error_is_not_retried() -> None:
    call = Calls(other_precondition())
    with pytest.raises(RPCError, match="something else"):
        await retry_workflow_not_ready(call)
    assert call.count == 1
