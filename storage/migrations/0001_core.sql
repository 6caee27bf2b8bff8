CREATE TABLE IF NOT EXISTS schema_version (
    version INTEGER PRIMARY KEY,
    name VARCHAR NOT NULL,
    applied_at TIMESTAMP NOT NULL
);

CREATE SEQUENCE IF NOT EXISTS users_id_seq START 1;
CREATE TABLE users (
    id INTEGER PRIMARY KEY DEFAULT nextval('users_id_seq'),
    username VARCHAR NOT NULL UNIQUE,
    display_name VARCHAR,
    email VARCHAR,
    role VARCHAR NOT NULL,
    password_hash VARCHAR NOT NULL,
    active BOOLEAN NOT NULL DEFAULT TRUE,
    failed_logins INTEGER NOT NULL DEFAULT 0,
    locked_until TIMESTAMP,
    is_demo BOOLEAN NOT NULL DEFAULT FALSE,
    created_at TIMESTAMP NOT NULL DEFAULT now(),
    updated_at TIMESTAMP NOT NULL DEFAULT now()
);

CREATE SEQUENCE IF NOT EXISTS audit_id_seq START 1;
CREATE TABLE audit_log (
    id BIGINT PRIMARY KEY DEFAULT nextval('audit_id_seq'),
    occurred_at TIMESTAMP NOT NULL DEFAULT now(),
    actor VARCHAR NOT NULL,
    action VARCHAR NOT NULL,
    entity VARCHAR NOT NULL,
    entity_id VARCHAR,
    before_json VARCHAR,
    after_json VARCHAR
);

CREATE TABLE settings (
    key VARCHAR PRIMARY KEY,
    value_json VARCHAR NOT NULL,
    updated_at TIMESTAMP NOT NULL DEFAULT now()
);

CREATE SEQUENCE IF NOT EXISTS runs_id_seq START 1;
CREATE TABLE runs (
    id BIGINT PRIMARY KEY DEFAULT nextval('runs_id_seq'),
    kind VARCHAR NOT NULL,              -- export | enrichment | segment | refresh
    target_id BIGINT,
    target_name VARCHAR,
    trigger VARCHAR NOT NULL,           -- manual | system_refresh | own_schedule | retry | resume
    requested_by VARCHAR,
    status VARCHAR NOT NULL,            -- queued running succeeded partially_succeeded failed cancelled skipped interrupted
    queued_at TIMESTAMP NOT NULL DEFAULT now(),
    started_at TIMESTAMP,
    finished_at TIMESTAMP,
    progress_done BIGINT NOT NULL DEFAULT 0,
    progress_total BIGINT,
    progress_message VARCHAR,
    counts_json VARCHAR,
    message VARCHAR,
    cancel_requested BOOLEAN NOT NULL DEFAULT FALSE,
    parent_run_id BIGINT,
    params_json VARCHAR
);

-- Unified customer profiles. Extra imported columns are added as x_<slug> columns.
CREATE TABLE profiles (
    customer_id VARCHAR NOT NULL,
    email VARCHAR,
    first_name VARCHAR,
    last_name VARCHAR,
    company_name VARCHAR,
    company_website VARCHAR,
    phone VARCHAR,
    street VARCHAR,
    city VARCHAR,
    state VARCHAR,
    country VARCHAR,
    postal_code VARCHAR,
    street2 VARCHAR,
    city2 VARCHAR,
    state2 VARCHAR,
    country2 VARCHAR,
    postal_code2 VARCHAR,
    email_opt_out BOOLEAN,
    updated_at TIMESTAMP
);

CREATE TABLE attribute_catalogue (
    key VARCHAR PRIMARY KEY,            -- profile.city, enrichment.3.industry
    label VARCHAR NOT NULL,
    type VARCHAR NOT NULL,              -- text | number | date | boolean
    source VARCHAR NOT NULL,            -- profile | enrichment
    source_id BIGINT,
    table_name VARCHAR NOT NULL,
    column_name VARCHAR NOT NULL,
    standard BOOLEAN NOT NULL DEFAULT FALSE,
    position INTEGER NOT NULL DEFAULT 0
);

INSERT INTO attribute_catalogue (key, label, type, source, table_name, column_name, standard, position) VALUES
 ('profile.customer_id', 'Customer ID', 'text', 'profile', 'profiles', 'customer_id', TRUE, 0),
 ('profile.email', 'Email', 'text', 'profile', 'profiles', 'email', TRUE, 1),
 ('profile.first_name', 'First name', 'text', 'profile', 'profiles', 'first_name', TRUE, 2),
 ('profile.last_name', 'Last name', 'text', 'profile', 'profiles', 'last_name', TRUE, 3),
 ('profile.company_name', 'Company name', 'text', 'profile', 'profiles', 'company_name', TRUE, 4),
 ('profile.company_website', 'Company website', 'text', 'profile', 'profiles', 'company_website', TRUE, 5),
 ('profile.phone', 'Phone', 'text', 'profile', 'profiles', 'phone', TRUE, 6),
 ('profile.street', 'Street', 'text', 'profile', 'profiles', 'street', TRUE, 7),
 ('profile.city', 'City', 'text', 'profile', 'profiles', 'city', TRUE, 8),
 ('profile.state', 'State', 'text', 'profile', 'profiles', 'state', TRUE, 9),
 ('profile.country', 'Country', 'text', 'profile', 'profiles', 'country', TRUE, 10),
 ('profile.postal_code', 'Postal code', 'text', 'profile', 'profiles', 'postal_code', TRUE, 11),
 ('profile.street2', 'Secondary street', 'text', 'profile', 'profiles', 'street2', TRUE, 12),
 ('profile.city2', 'Secondary city', 'text', 'profile', 'profiles', 'city2', TRUE, 13),
 ('profile.state2', 'Secondary state', 'text', 'profile', 'profiles', 'state2', TRUE, 14),
 ('profile.country2', 'Secondary country', 'text', 'profile', 'profiles', 'country2', TRUE, 15),
 ('profile.postal_code2', 'Secondary postal code', 'text', 'profile', 'profiles', 'postal_code2', TRUE, 16),
 ('profile.email_opt_out', 'Email opt-out', 'boolean', 'profile', 'profiles', 'email_opt_out', TRUE, 17),
 ('profile.updated_at', 'Updated at', 'date', 'profile', 'profiles', 'updated_at', TRUE, 18);
