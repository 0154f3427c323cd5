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
UPDATE packages SET keywords = (
    SELECT ',' || group_concat(lower(trim(replace(k.value, ',', ' '))), ',') || ','
    FROM dist_tags d
    JOIN versions v ON v.package_id = d.package_id AND v.version = d.version,
    json_each(v.manifest, '$.keywords') k
    WHERE d.package_id = packages.id AND d.tag = 'latest' AND k.type = 'text'
      AND trim(k.value) <> ''
);
