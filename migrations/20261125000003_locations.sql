-- Places. A location belongs to the user whose photo or memory it came from: GPS positions of
-- someone's photos reveal their home, so they are private data like the photos themselves
-- (the data model had them global; we scope them for row-level security and erasure).

CREATE TABLE locations (
    id             uuid PRIMARY KEY DEFAULT gen_random_uuid(),
    user_id        uuid NOT NULL REFERENCES users (id) ON DELETE CASCADE,
    name           text CHECK (length(name) <= 500),
    address        text CHECK (length(address) <= 1000),
    latitude       double precision NOT NULL CHECK (latitude BETWEEN -90 AND 90),
    longitude      double precision NOT NULL CHECK (longitude BETWEEN -180 AND 180),
    -- GPS horizontal error in metres (EXIF GPSHPositioningError).
    accuracy       double precision CHECK (accuracy >= 0),
    country        text CHECK (length(country) <= 200),
    country_code   text CHECK (country_code ~ '^[A-Z]{2}$'),
    state_province text CHECK (length(state_province) <= 200),
    city           text CHECK (length(city) <= 200),
    postal_code    text CHECK (length(postal_code) <= 20),
    venue_name     text CHECK (length(venue_name) <= 500),
    venue_type     text CHECK (venue_type ~ '^[a-z_]{1,50}$'),
    -- IANA zone name, e.g. Europe/Paris.
    timezone       text CHECK (length(timezone) <= 64),
    created_at     timestamptz NOT NULL DEFAULT now(),
    updated_at     timestamptz NOT NULL DEFAULT now(),
    -- Lets child tables reference (id, user_id) so a row can only point at its owner's place.
    UNIQUE (id, user_id)
);
CREATE INDEX idx_locations_coordinates ON locations (latitude, longitude);
CREATE INDEX idx_locations_country_city ON locations (country, city);
-- Radius search: earth_box(ll_to_earth(lat, lon), metres) @> ll_to_earth(latitude, longitude),
-- led by user_id so a user's query only walks that user's part of the tree.
CREATE INDEX idx_locations_user_earth ON locations USING gist (user_id, ll_to_earth(latitude, longitude));
-- One row per user and exact position: the EXIF worker upserts on this, so a retried step or two
-- photos taken at the same spot reuse the place instead of piling up copies.
CREATE UNIQUE INDEX idx_locations_user_position ON locations (user_id, latitude, longitude);
SELECT manage_updated_at('locations');

CREATE TABLE location_history (
    id          uuid PRIMARY KEY DEFAULT gen_random_uuid(),
    user_id     uuid NOT NULL,
    location_id uuid NOT NULL,
    "timestamp" timestamptz NOT NULL,
    accuracy    double precision CHECK (accuracy >= 0),
    source      text NOT NULL DEFAULT 'manual'
                CHECK (source IN ('gps', 'photo_exif', 'wifi', 'cell', 'manual', 'import')),
    created_at  timestamptz NOT NULL DEFAULT now(),
    FOREIGN KEY (user_id) REFERENCES users (id) ON DELETE CASCADE,
    FOREIGN KEY (location_id, user_id) REFERENCES locations (id, user_id) ON DELETE CASCADE
);
CREATE INDEX idx_location_history_user_time ON location_history (user_id, "timestamp");
CREATE INDEX idx_location_history_location ON location_history (location_id);
