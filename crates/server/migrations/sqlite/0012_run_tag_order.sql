-- A run's tags live only in run_tags: `position` keeps the order they were given in, and the
-- JSON copy in runs.tags goes. Existing tags are ordered as runs.tags listed them; a tag found
-- in only one of the two places is kept, the ones only run_tags held after the listed ones (by
-- name). A runs.tags that is not a JSON list of strings contributes nothing.
ALTER TABLE run_tags ADD COLUMN position INTEGER NOT NULL DEFAULT 0;

CREATE TEMP TABLE run_tag_order AS
SELECT run_pk, tag, MIN(listed_at) AS listed_at FROM (
    SELECT r.pk AS run_pk, j.value AS tag, j.key AS listed_at
    FROM runs r, json_each(CASE
        WHEN NOT json_valid(r.tags) THEN '[]'
        WHEN json_type(r.tags) = 'array' THEN r.tags
        ELSE '[]' END) j
    WHERE j.type = 'text'
    UNION ALL
    SELECT run_pk, tag, NULL FROM run_tags
) GROUP BY run_pk, tag;

INSERT INTO run_tags (run_pk, tag, position)
SELECT run_pk, tag,
    ROW_NUMBER() OVER (PARTITION BY run_pk ORDER BY listed_at IS NULL, listed_at, tag) - 1
FROM run_tag_order WHERE true
ON CONFLICT (run_pk, tag) DO UPDATE SET position = excluded.position;

DROP TABLE run_tag_order;

ALTER TABLE runs DROP COLUMN tags;
