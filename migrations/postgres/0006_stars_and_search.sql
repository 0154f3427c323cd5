-- Stars: one row per (package, user) who starred it.
CREATE TABLE stars (
    package_id BIGINT NOT NULL REFERENCES packages(id) ON DELETE CASCADE,
    user_id BIGINT NOT NULL REFERENCES users(id) ON DELETE CASCADE,
    created_at BIGINT NOT NULL,
    PRIMARY KEY (package_id, user_id)
);
CREATE INDEX stars_by_user ON stars (user_id);

-- The keywords of the version `latest` points to, for search: lower-case, commas
-- removed, each between commas (`,cli,http client,`); NULL when there are none.
-- Written at publish, on a move of `latest` and on unpublish (npm::keywords).
ALTER TABLE packages ADD COLUMN keywords TEXT;
UPDATE packages p SET keywords = (
    SELECT ',' || string_agg(lower(btrim(replace(k.value, ',', ' '))), ',') || ','
    FROM dist_tags d
    JOIN versions v ON v.package_id = d.package_id AND v.version = d.version
    CROSS JOIN LATERAL jsonb_array_elements(
        CASE WHEN jsonb_typeof(v.manifest::jsonb -> 'keywords') = 'array'
             THEN v.manifest::jsonb -> 'keywords' ELSE '[]'::jsonb END
    ) AS e
    CROSS JOIN LATERAL (SELECT e #>> '{}' AS value) AS k
    WHERE d.package_id = p.id AND d.tag = 'latest' AND jsonb_typeof(e) = 'string'
      AND btrim(k.value) <> ''
);
