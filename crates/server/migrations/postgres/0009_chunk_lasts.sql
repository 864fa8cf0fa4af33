-- The last point of each metric chunk and of each of its 32-point blocks, so a downsampled
-- read can draw each bucket's last value without decoding the points. Chunks written before
-- this migration have NULLs here and are decoded when a read needs their last point.
-- last_value is NULL for a NaN last value (as on SQLite); last_ts tells the two cases apart.
ALTER TABLE metric_chunks ADD COLUMN last_value DOUBLE PRECISION;
ALTER TABLE metric_chunks ADD COLUMN last_ts BIGINT;
ALTER TABLE metric_chunks ADD COLUMN lasts BYTEA;
