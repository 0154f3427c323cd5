-- The Sigstore provenance bundle sent with a version (npm publish --provenance),
-- as JSON text, after its subject and DSSE signature were checked.
ALTER TABLE versions ADD COLUMN provenance TEXT;
-- The same for a staged version, carried to the version when it is approved.
ALTER TABLE staged_versions ADD COLUMN provenance TEXT;
