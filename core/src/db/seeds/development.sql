-- Development data: three users with different roles, their places, memories, people,
-- relationships, albums and a little social activity. Loaded once: if alice exists, nothing
-- happens. Fixed UUIDs make the data easy to refer to in docs and manual testing.
DO $seed$
DECLARE
    alice uuid := '00000000-0000-4000-8000-00000000a11c';
    bob   uuid := '00000000-0000-4000-8000-000000000b0b';
    carol uuid := '00000000-0000-4000-8000-0000000ca201';
    paris uuid; helsinki uuid; nairobi uuid; seattle uuid;
    m1 uuid; m2 uuid; m3 uuid; m4 uuid; b1 uuid;
    grandma uuid; bob_person uuid; colleague uuid;
    album uuid;
BEGIN
    IF EXISTS (SELECT 1 FROM users WHERE id = alice) THEN
        RETURN;
    END IF;

    INSERT INTO users (id, email, first_name, last_name, date_of_birth, bio, timezone, language, role,
                       is_verified, privacy_settings, notification_settings)
    VALUES
        (alice, 'alice@example.org', 'Alice', 'Martin', '1988-04-12', 'Traveller and amateur photographer.',
         'Europe/Paris', 'fr', 'user', true, '{"default_visibility": "private", "share_location": false}',
         '{"email": true, "push": false}'),
        (bob, 'bob@example.org', 'Bob', 'Virtanen', '1990-09-30', NULL, 'Europe/Helsinki', 'en', 'user', true,
         '{"default_visibility": "friends"}', '{"email": false}'),
        (carol, 'carol.admin@example.org', 'Carol', 'Admin', NULL, 'Operator account.', 'UTC', 'en', 'admin', true,
         '{}', '{}');

    INSERT INTO user_settings (user_id, setting_key, setting_value) VALUES
        (alice, 'timeline.group_by', '"month"'),
        (alice, 'ui.theme', '"dark"'),
        (bob, 'timeline.group_by', '"day"');

    INSERT INTO locations (user_id, name, latitude, longitude, accuracy, country, country_code, state_province, city, timezone)
    VALUES (alice, 'Eiffel Tower', 48.8584, 2.2945, 5, 'France', 'FR', 'Ile-de-France', 'Paris', 'Europe/Paris')
    RETURNING id INTO paris;
    INSERT INTO locations (user_id, name, latitude, longitude, country, country_code, state_province, city, timezone)
    VALUES (alice, 'Helsinki Cathedral', 60.1704, 24.9522, 'Finland', 'FI', 'Uusimaa', 'Helsinki', 'Europe/Helsinki')
    RETURNING id INTO helsinki;
    INSERT INTO locations (user_id, name, latitude, longitude, country, country_code, state_province, city, venue_type, timezone)
    VALUES (alice, 'Lake Nakuru', -0.3713, 36.0564, 'Kenya', 'KE', 'Nakuru', 'Nakuru', 'park', 'Africa/Nairobi')
    RETURNING id INTO nairobi;
    INSERT INTO locations (user_id, name, latitude, longitude, country, country_code, state_province, city, timezone)
    VALUES (bob, 'Space Needle', 47.6205, -122.3493, 'United States', 'US', 'Washington', 'Seattle', 'America/Los_Angeles')
    RETURNING id INTO seattle;

    INSERT INTO location_history (user_id, location_id, "timestamp", accuracy, source) VALUES
        (alice, paris, '2023-07-14 20:00+02', 8, 'gps'),
        (alice, helsinki, '2024-01-03 12:30+02', 15, 'photo_exif'),
        (bob, seattle, '2022-05-01 09:00-07', 20, 'gps');

    INSERT INTO memories (user_id, title, description, memory_date, memory_type, location_id, visibility, is_favorite, tags)
    VALUES (alice, 'Bastille Day fireworks', 'Fireworks over the Champ de Mars.', '2023-07-14 23:00+02', 'photo',
            paris, 'friends', true, '["fireworks", "paris", "summer"]')
    RETURNING id INTO m1;
    INSERT INTO memories (user_id, title, memory_date, memory_type, location_id, tags)
    VALUES (alice, 'Frozen sea walk', '2024-01-03 13:00+02', 'photo', helsinki, '["winter", "finland"]')
    RETURNING id INTO m2;
    INSERT INTO memories (user_id, title, description, memory_date, memory_type, location_id, visibility, tags)
    VALUES (alice, 'Flamingos at Lake Nakuru', 'Thousands of them.', '2019-02-20 07:30+03', 'event', nairobi,
            'public', '["safari", "birds"]')
    RETURNING id INTO m3;
    INSERT INTO memories (user_id, title, memory_date, memory_type, source_platform, source_id, tags)
    VALUES (alice, 'Started a new job', '2021-09-01 09:00+02', 'milestone', 'facebook', 'fb-post-1001', '["work"]')
    RETURNING id INTO m4;
    INSERT INTO memories (user_id, title, memory_date, memory_type, location_id, visibility, tags)
    VALUES (bob, 'First hike of the year', '2022-05-01 10:00-07', 'checkin', seattle, 'friends', '["hiking"]')
    RETURNING id INTO b1;

    INSERT INTO persons (created_by_user_id, first_name, last_name, bio)
    VALUES (alice, 'Marie', 'Martin', 'Grandma.') RETURNING id INTO grandma;
    INSERT INTO persons (created_by_user_id, first_name, last_name, email, user_id, is_user)
    VALUES (alice, 'Bob', 'Virtanen', 'bob@example.org', bob, true) RETURNING id INTO bob_person;
    INSERT INTO persons (created_by_user_id, first_name, last_name)
    VALUES (bob, 'Sam', 'Lee') RETURNING id INTO colleague;

    INSERT INTO user_persons (user_id, person_id, relationship_type, relationship_status, notes) VALUES
        (alice, grandma, 'family', 'active', 'Birthday in March.'),
        (alice, bob_person, 'friend', 'active', NULL),
        (bob, colleague, 'colleague', 'active', NULL);

    INSERT INTO memory_persons (memory_id, person_id, user_id, role, x_coordinate, y_coordinate, confidence) VALUES
        (m1, grandma, alice, 'subject', 0.42, 0.38, 0.97),
        (m1, bob_person, alice, 'photographer', NULL, NULL, NULL),
        (m2, bob_person, alice, 'attendee', 0.6, 0.5, 0.88),
        (b1, colleague, bob, 'attendee', NULL, NULL, NULL);

    INSERT INTO collections (user_id, name, description, visibility, sort_order)
    VALUES (alice, 'Travels', 'Places I have been.', 'friends', 'date_desc') RETURNING id INTO album;
    INSERT INTO collection_memories (collection_id, memory_id, user_id, position) VALUES
        (album, m1, alice, 0), (album, m2, alice, 1), (album, m3, alice, 2);

    INSERT INTO shares (memory_id, user_id, shared_with_user_id, permission)
    VALUES (m1, alice, bob, 'comment');
    INSERT INTO comments (memory_id, user_id, body) VALUES (m1, bob, 'Wish I had been there!');
    INSERT INTO reactions (memory_id, user_id, reaction_type) VALUES (m1, bob, 'love');
END
$seed$;
