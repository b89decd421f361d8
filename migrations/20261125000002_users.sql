-- Users, their settings and their API tokens.

CREATE TABLE users (
    id                    uuid PRIMARY KEY DEFAULT gen_random_uuid(),
    email                 email_address NOT NULL,
    -- NULL for accounts that only use API tokens; otherwise a bcrypt/argon2 PHC string.
    password_hash         text CHECK (password_hash IS NULL OR password_hash ~ '^\$'),
    first_name            text CHECK (length(first_name) <= 100),
    last_name             text CHECK (length(last_name) <= 100),
    date_of_birth         date CHECK (date_of_birth > '1900-01-01' AND date_of_birth <= now()),
    profile_picture_url   text CHECK (profile_picture_url ~ '^https?://'),
    bio                   text CHECK (length(bio) <= 5000),
    timezone              text NOT NULL DEFAULT 'UTC' CHECK (length(timezone) BETWEEN 1 AND 64),
    language              text NOT NULL DEFAULT 'en' CHECK (language ~ '^[a-z]{2,3}(-[A-Za-z0-9]{2,8})*$'),
    role                  text NOT NULL DEFAULT 'user' CHECK (role IN ('user', 'admin')),
    is_active             boolean NOT NULL DEFAULT true,
    is_verified           boolean NOT NULL DEFAULT false,
    privacy_settings      jsonb NOT NULL DEFAULT '{}' CHECK (jsonb_typeof(privacy_settings) = 'object'),
    notification_settings jsonb NOT NULL DEFAULT '{}' CHECK (jsonb_typeof(notification_settings) = 'object'),
    created_at            timestamptz NOT NULL DEFAULT now(),
    updated_at            timestamptz NOT NULL DEFAULT now()
);
-- Emails are unique regardless of case: Alice@x.org and alice@x.org are one person.
-- This also serves the model's idx_users_email (login lookup is by lower(email)).
CREATE UNIQUE INDEX idx_users_email ON users (lower(email));
CREATE INDEX idx_users_active_verified ON users (is_active, is_verified);
CREATE INDEX idx_users_created_at ON users (created_at);
SELECT manage_updated_at('users');

CREATE TABLE user_settings (
    id            uuid PRIMARY KEY DEFAULT gen_random_uuid(),
    user_id       uuid NOT NULL REFERENCES users (id) ON DELETE CASCADE,
    setting_key   text NOT NULL CHECK (setting_key ~ '^[a-z0-9_.]{1,100}$'),
    setting_value jsonb NOT NULL,
    created_at    timestamptz NOT NULL DEFAULT now(),
    updated_at    timestamptz NOT NULL DEFAULT now(),
    UNIQUE (user_id, setting_key)
);
SELECT manage_updated_at('user_settings');

-- Bearer tokens for the HTTP API. Only SHA-256 of the token is stored: tokens are 256 random
-- bits, so a plain hash cannot be brute-forced and lookups stay a single index probe.
CREATE TABLE api_tokens (
    id           uuid PRIMARY KEY DEFAULT gen_random_uuid(),
    user_id      uuid NOT NULL REFERENCES users (id) ON DELETE CASCADE,
    token_hash   bytea NOT NULL UNIQUE CHECK (length(token_hash) = 32),
    name         text NOT NULL DEFAULT 'default' CHECK (length(name) BETWEEN 1 AND 100),
    last_used_at timestamptz,
    expires_at   timestamptz,
    revoked_at   timestamptz,
    created_at   timestamptz NOT NULL DEFAULT now(),
    updated_at   timestamptz NOT NULL DEFAULT now()
);
CREATE INDEX idx_api_tokens_user_id ON api_tokens (user_id);
SELECT manage_updated_at('api_tokens');
