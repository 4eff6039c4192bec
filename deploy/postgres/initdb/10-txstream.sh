#!/usr/bin/env bash
# First start of the compose PostgreSQL (docker-entrypoint-initdb.d): one login
# role and database for txstream, one for Dagster's own storage.
#
# `txstream` owns its database and may create roles, because its migrations
# create txstream_writer / txstream_reader and `txstream up` gives the reader a
# password; it is not a superuser. Passwords arrive as psql variables, quoted
# by psql (:'name'), never pasted into SQL text.
set -euo pipefail

: "${TXSTREAM_DB_PASSWORD:?TXSTREAM_DB_PASSWORD must be set (see .env.example)}"
: "${DAGSTER_PG_PASSWORD:?DAGSTER_PG_PASSWORD must be set (see .env.example)}"

psql --no-psqlrc -v ON_ERROR_STOP=1 --username "${POSTGRES_USER:-postgres}" --dbname postgres \
    -v txstream_password="$TXSTREAM_DB_PASSWORD" \
    -v dagster_password="$DAGSTER_PG_PASSWORD" <<'SQL'
CREATE ROLE txstream LOGIN CREATEROLE PASSWORD :'txstream_password';
CREATE DATABASE txstream OWNER txstream;
CREATE ROLE dagster LOGIN PASSWORD :'dagster_password';
CREATE DATABASE dagster OWNER dagster;
-- PostgreSQL 15+ no longer lets every role create objects in public; each
-- database's owner does, which is all these two need.
REVOKE ALL ON DATABASE txstream FROM PUBLIC;
REVOKE ALL ON DATABASE dagster FROM PUBLIC;
SQL
