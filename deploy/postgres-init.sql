-- Handoff's own database, beside the ones Temporal's auto-setup creates (temporal, temporal_visibility).
-- Run once by the postgres image on an empty data volume (/docker-entrypoint-initdb.d).
CREATE DATABASE handoff;
