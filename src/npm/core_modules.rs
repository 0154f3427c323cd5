//! Node.js core module names. `require("http")` loads Node's own module whatever is
//! in `node_modules`, so a package called `http` only misleads; npm's
//! `validate-npm-package-name` refuses these for new packages ("… is a core module
//! name"), and so does the registry (existing packages keep publishing).
//!
//! Source: `require("module").builtinModules` of Node.js 20.20 (the Node on our build
//! machines), without the `_`-prefixed internals and the `x/y` sub-paths, which are
//! not valid unscoped package names anyway. Modules that exist only with the `node:`
//! prefix (`node:test`, `node:sqlite`, `node:sea`) are not listed: a bare `test` is a
//! normal package.

const NODE_CORE_MODULES: &[&str] = &[
    "assert",
    "async_hooks",
    "buffer",
    "child_process",
    "cluster",
    "console",
    "constants",
    "crypto",
    "dgram",
    "diagnostics_channel",
    "dns",
    "domain",
    "events",
    "fs",
    "http",
    "http2",
    "https",
    "inspector",
    "module",
    "net",
    "os",
    "path",
    "perf_hooks",
    "process",
    "punycode",
    "querystring",
    "readline",
    "repl",
    "stream",
    "string_decoder",
    "sys",
    "timers",
    "tls",
    "trace_events",
    "tty",
    "url",
    "util",
    "v8",
    "vm",
    "wasi",
    "worker_threads",
    "zlib",
];

/// Whether an (unscoped) package name is a Node.js core module.
pub fn is_core_module(name: &str) -> bool {
    NODE_CORE_MODULES.contains(&name)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn core_modules() {
        for core in ["http", "fs", "path", "crypto", "stream", "child_process"] {
            assert!(is_core_module(core), "{core}");
        }
        for other in ["test", "express", "http-server", "@acme/http", "fs-extra"] {
            assert!(!is_core_module(other), "{other}");
        }
        let mut sorted = NODE_CORE_MODULES.to_vec();
        sorted.sort_unstable();
        assert_eq!(sorted, NODE_CORE_MODULES, "kept sorted for review");
    }
}
