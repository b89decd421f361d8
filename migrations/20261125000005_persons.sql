-- People in a user's memories. A person record is private to the user who created it
-- (created_by_user_id); user_id links it to a system account when the person has one.

CREATE TABLE persons (
    id                  uuid PRIMARY KEY DEFAULT gen_random_uuid(),
    created_by_user_id  uuid NOT NULL REFERENCES users (id) ON DELETE CASCADE,
    first_name          text NOT NULL CHECK (length(first_name) BETWEEN 1 AND 100),
    last_name           text CHECK (length(last_name) <= 100),
    email               email_address,
    profile_picture_url text CHECK (profile_picture_url ~ '^https?://'),
    date_of_birth       date CHECK (date_of_birth <= now()),
    bio                 text CHECK (length(bio) <= 5000),
    is_user             boolean NOT NULL DEFAULT false,
    -- The account of this person, if they use the system. Their leaving keeps the record.
    user_id             uuid REFERENCES users (id) ON DELETE SET NULL,
    created_at          timestamptz NOT NULL DEFAULT now(),
    updated_at          timestamptz NOT NULL DEFAULT now(),
    -- is_user is kept because the data model has it, but it cannot disagree with user_id.
    -- (When the linked account is deleted, the trigger below clears is_user with it.)
    CHECK (is_user = (user_id IS NOT NULL)),
    UNIQUE (id, created_by_user_id)
);
CREATE INDEX idx_persons_created_by ON persons (created_by_user_id);
CREATE INDEX idx_persons_user_id ON persons (user_id) WHERE user_id IS NOT NULL;
SELECT manage_updated_at('persons');

-- ON DELETE SET NULL clears user_id; keep is_user consistent in the same statement.
CREATE FUNCTION persons_sync_is_user() RETURNS trigger
LANGUAGE plpgsql AS $$
BEGIN
    NEW.is_user := NEW.user_id IS NOT NULL;
    RETURN NEW;
END
$$;
CREATE TRIGGER sync_is_user BEFORE INSERT OR UPDATE OF user_id ON persons
    FOR EACH ROW EXECUTE FUNCTION persons_sync_is_user();

CREATE TABLE user_persons (
    id                  uuid PRIMARY KEY DEFAULT gen_random_uuid(),
    user_id             uuid NOT NULL REFERENCES users (id) ON DELETE CASCADE,
    person_id           uuid NOT NULL,
    relationship_type   text NOT NULL DEFAULT 'friend'
                        CHECK (relationship_type IN ('family', 'partner', 'friend', 'colleague', 'classmate',
                                                     'neighbor', 'acquaintance', 'other')),
    relationship_status text NOT NULL DEFAULT 'active'
                        CHECK (relationship_status IN ('active', 'pending', 'blocked', 'archived')),
    notes               text CHECK (length(notes) <= 5000),
    created_at          timestamptz NOT NULL DEFAULT now(),
    updated_at          timestamptz NOT NULL DEFAULT now(),
    UNIQUE (user_id, person_id),
    FOREIGN KEY (person_id, user_id) REFERENCES persons (id, created_by_user_id) ON DELETE CASCADE
);
CREATE INDEX idx_user_persons_user_relationship ON user_persons (user_id, relationship_type);
CREATE INDEX idx_user_persons_person ON user_persons (person_id);
SELECT manage_updated_at('user_persons');

CREATE TABLE memory_persons (
    id           uuid PRIMARY KEY DEFAULT gen_random_uuid(),
    memory_id    uuid NOT NULL,
    person_id    uuid NOT NULL,
    user_id      uuid NOT NULL REFERENCES users (id) ON DELETE CASCADE,
    role         text NOT NULL DEFAULT 'subject'
                 CHECK (role IN ('subject', 'photographer', 'mentioned', 'tagged', 'attendee', 'creator')),
    -- Face position as a fraction of the image (0..1 from the top-left corner).
    x_coordinate double precision CHECK (x_coordinate BETWEEN 0 AND 1),
    y_coordinate double precision CHECK (y_coordinate BETWEEN 0 AND 1),
    confidence   double precision CHECK (confidence BETWEEN 0 AND 1),
    created_at   timestamptz NOT NULL DEFAULT now(),
    updated_at   timestamptz NOT NULL DEFAULT now(),
    UNIQUE (memory_id, person_id, role),
    FOREIGN KEY (memory_id, user_id) REFERENCES memories (id, user_id) ON DELETE CASCADE,
    FOREIGN KEY (person_id, user_id) REFERENCES persons (id, created_by_user_id) ON DELETE CASCADE
);
CREATE INDEX idx_memory_persons_memory_person ON memory_persons (memory_id, person_id);
CREATE INDEX idx_memory_persons_person ON memory_persons (person_id);
SELECT manage_updated_at('memory_persons');
