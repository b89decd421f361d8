-- The library queue (exports, erasures, API imports) pauses from the dashboard like the steps'
-- queues: its waiting tasks are held by the same trigger (timeline_hold_paused), and the
-- reconciler leaves a held export or import alone, since its task is still live.
ALTER TABLE queue_pauses DROP CONSTRAINT queue_pauses_queue_check;
ALTER TABLE queue_pauses ADD CONSTRAINT queue_pauses_queue_check
    CHECK (queue IN ('hash', 'exif', 'thumbnail', 'video', 'library'));
