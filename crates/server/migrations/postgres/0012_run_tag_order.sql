-- A run's tags live only in run_tags: `position` keeps the order they were given in, and the
-- JSON copy in runs.tags goes. Existing tags are ordered as runs.tags listed them; a tag found
-- in only one of the two places is kept, the ones only run_tags held after the listed ones (by
-- name). A runs.tags that is not a JSON list of strings contributes nothing.
ALTER TABLE run_tags ADD COLUMN position BIGINT NOT NULL DEFAULT 0;

-- runs.tags as a JSON list; '[]' where the text is not a JSON list.
CREATE FUNCTION pg_temp.listed_tags(tags TEXT) RETURNS JSONB LANGUAGE plpgsql IMMUTABLE AS $$
BEGIN
    IF jsonb_typeof(tags::jsonb) = 'array' THEN
        RETURN tags::jsonb;
    END IF;
    RETURN '[]'::jsonb;
EXCEPTION WHEN invalid_text_representation THEN
    RETURN '[]'::jsonb;
END
$$;

CREATE TEMP TABLE run_tag_order AS
SELECT run_pk, tag, MIN(listed_at) AS listed_at FROM (
    SELECT r.pk AS run_pk, e.value #>> '{}' AS tag, e.listed_at
    FROM runs r
    CROSS JOIN LATERAL jsonb_array_elements(pg_temp.listed_tags(r.tags))
        WITH ORDINALITY AS e(value, listed_at)
    WHERE jsonb_typeof(e.value) = 'string'
    UNION ALL
    SELECT run_pk, tag, NULL FROM run_tags
) t GROUP BY run_pk, tag;

INSERT INTO run_tags (run_pk, tag, position)
SELECT run_pk, tag,
    ROW_NUMBER() OVER (PARTITION BY run_pk ORDER BY listed_at IS NULL, listed_at, tag COLLATE "C") - 1
FROM run_tag_order
ON CONFLICT (run_pk, tag) DO UPDATE SET position = EXCLUDED.position;

DROP TABLE run_tag_order;
DROP FUNCTION pg_temp.listed_tags(TEXT);

ALTER TABLE runs DROP COLUMN tags;
