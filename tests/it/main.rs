//! The single integration-test binary. Every test starts a real server on an
//! ephemeral port and drives it with the real npm CLI, the built `tessera` binary
//! or plain HTTP.

mod harness;

/// The `tessera` binary: serve flags, config precedence, shutdown, operator commands.
mod binary;
/// What the binary prints: aligned tables, and a quiet end when the reader goes away.
mod cli_output;
/// npm, pnpm, yarn and bun: the same round with each, and each client's own commands.
mod clients;
/// `tessera config show`: each setting's source, and the README's table of settings.
mod config_show;
/// Data safety: kill -9 during publishes, gc beside publishes, a full disk, backup and restore.
mod data_safety;
/// Stars and search: who may change and see what, keywords and ranking.
mod discovery;
/// Token lifecycle: the write-token cap, rotation, expiry warnings, leak response,
/// publish-time secret scanning and registry signatures (`npm audit signatures`).
mod lifecycle;
/// The authorization matrix: credential × action × 2FA mode × package policy, live.
mod matrix;
/// Operations: SIGTERM drains, connection limits, bounded metrics, pruning, start-up checks.
mod ops;
/// Organizations and teams with npm, live rights, token organization limits, and
/// who can publish a package.
mod orgs;
/// Provenance attestations: the Sigstore bundle of `npm publish --provenance`
/// checked, kept and served.
mod provenance;
/// The publish pipeline: version identity, deleted names, core module names, tags,
/// manifest confusion, server-owned fields, and bodies and memory before and during
/// a publish.
mod publish_rules;
/// The read cache on both databases: every write is seen by the next request.
mod read_cache;
/// Packages with the npm CLI: publish, install, view, dist-tags, deprecate, unpublish, owners, access, search.
mod registry;
/// Publish rules, visibility and bad input over HTTP.
mod rules;
/// Several instances, PostgreSQL and S3, failures, migrate-store.
mod scale;
/// The read cache shared across instances on PostgreSQL: the generation rule.
mod shared_cache;
/// Registry signatures: `dist.signatures`, `/-/npm/v1/keys`, key rotation, and the
/// real `npm audit signatures` through a loopback stand-in for Sigstore's TUF
/// repository.
mod signatures;
/// Store-level behaviour on SQLite and PostgreSQL.
mod store;
/// The Access Tokens pages: our own words for the types, a list that fits, keyboard revoke.
mod token_pages;
/// Access tokens: types, CIDR, show-once, list and revoke (npm CLI and `tessera token`).
mod tokens;
/// The trust core under attack: credential paths, throttles, limits, hiding, revisions.
mod trust;
/// Trusted publishing (a local OIDC issuer, npm in GitHub Actions and GitLab CI
/// mode) and staged releases with `npm stage`.
mod trusted_publishing;
/// Two-factor authentication.
mod two_factor;
/// Uplinks: proxied packages, the dependency-confusion shield, the release cooldown,
/// stale serving, integrity refusals and audit forwarding.
mod uplinks;
/// The website in headless Chromium: sign-in, Access Tokens, 2FA, browser login for npm.
mod web;
/// Chromium, chromedriver and an async server for the website tests.
mod web_harness;
