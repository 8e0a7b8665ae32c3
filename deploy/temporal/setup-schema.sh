#!/bin/sh
# One-shot schema setup for deploy/docker-compose.yml (service temporal-schema, image
# temporalio/admin-tools): creates the `temporal` and `temporal_visibility` databases when
# missing and brings both schemas to the version this server release ships. Safe to run on
# every `docker compose up`: update-schema only applies versions that are not there yet.
set -eu

: "${POSTGRES_SEEDS:?POSTGRES_SEEDS is required}"
: "${POSTGRES_USER:?POSTGRES_USER is required}"
: "${POSTGRES_PASSWORD_FILE:?POSTGRES_PASSWORD_FILE is required}"
DB_PORT="${DB_PORT:-5432}"
SCHEMA_ROOT=/etc/temporal/schema/postgresql/v12

# temporal-sql-tool reads the password from SQL_PASSWORD; it comes from the Compose secret and
# is never part of the service's configured environment.
SQL_PASSWORD="$(cat "$POSTGRES_PASSWORD_FILE")"
export SQL_PASSWORD

echo "waiting for PostgreSQL at ${POSTGRES_SEEDS}:${DB_PORT}"
tries=0
until nc -z "$POSTGRES_SEEDS" "$DB_PORT"; do
    tries=$((tries + 1))
    [ "$tries" -ge 60 ] && { echo "PostgreSQL did not come up" >&2; exit 1; }
    sleep 2
done

sql() {
    temporal-sql-tool --plugin postgres12 --ep "$POSTGRES_SEEDS" -p "$DB_PORT" \
        -u "$POSTGRES_USER" "$@"
}

for db in temporal temporal_visibility; do
    # `create` fails when the database exists (the PostgreSQL image already creates the
    # database named after POSTGRES_USER); that is not an error here.
    sql --db "$db" create || echo "database $db exists"
done
sql --db temporal setup-schema -v 0.0
sql --db temporal update-schema -d "$SCHEMA_ROOT/temporal/versioned"
sql --db temporal_visibility setup-schema -v 0.0
sql --db temporal_visibility update-schema -d "$SCHEMA_ROOT/visibility/versioned"
echo "Temporal schema is up to date"
