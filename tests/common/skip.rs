//! Skipping a test whose outside resource is missing: a printed reason, or, where the run
//! requires every resource (`DRA_REQUIRE_FIXTURES=1`, as `.ci/run` sets), a failure.

/// Says why a test skips, or fails it when `DRA_REQUIRE_FIXTURES` is set.
pub fn skip(reason: &str) {
    if std::env::var_os("DRA_REQUIRE_FIXTURES").is_some_and(|v| !v.is_empty() && v != "0") {
        panic!("required (DRA_REQUIRE_FIXTURES) but missing: {reason}");
    }
    eprintln!("skipped: {reason}");
}
