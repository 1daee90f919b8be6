//! The scenario harness: every scenario is a `fn(&Runtime)` run once per runtime.

pub use hako_test_support::{
    Bundle, Config, ContainerGuard, Runtime, RuntimeKind, in_ci, root_or_skip, unique_id,
};

/// Define `mod <name> { #[test] fn hako(); #[test] fn runc(); }` for scenario fn `<name>`,
/// so `cargo nextest run -E 'test(/::runc$/)'` selects the oracle runs.
macro_rules! scenario {
    ($($name:ident),* $(,)?) => {$(
        mod $name {
            #[test]
            fn hako() {
                $crate::common::run_scenario(
                    $crate::common::RuntimeKind::Hako, stringify!($name), super::$name);
            }
            #[test]
            fn runc() {
                $crate::common::run_scenario(
                    $crate::common::RuntimeKind::Runc, stringify!($name), super::$name);
            }
        }
    )*};
}
pub(crate) use scenario;

/// Run `f` against `kind`, or print why it is skipped: not root, runtime filtered out by
/// `HAKO_E2E_RUNTIMES=runc,hako`, or binary missing (a failure for hako-runtime under CI).
pub fn run_scenario(kind: RuntimeKind, name: &str, f: fn(&Runtime)) {
    if !root_or_skip(&format!("{name} [{kind}]")) {
        return;
    }
    if let Ok(only) = std::env::var("HAKO_E2E_RUNTIMES")
        && !only.split(',').any(|r| r.trim() == kind.name())
    {
        eprintln!("SKIP {name} [{kind}]: not in HAKO_E2E_RUNTIMES={only}");
        return;
    }
    let rt = match Runtime::new(kind) {
        Ok(rt) => rt,
        // runc is a Debian package scripts/test.sh installs: under CI missing is a failure too.
        Err(e) if in_ci() => {
            panic!(
                "{name} [{kind}]: {e:#} (CI=true: hako-runtime must be built before the e2e tests, runc installed)"
            )
        }
        Err(e) => {
            eprintln!("SKIP {name} [{kind}]: {e:#}");
            return;
        }
    };
    f(&rt);
}

/// A bundle for `config`, panicking with context on fixture errors.
pub fn bundle(config: &Config) -> Bundle {
    Bundle::new(config).expect("building busybox bundle")
}

/// Run `config` in the foreground, assert it succeeded and left nothing; return stdout.
#[track_caller]
pub fn inside(rt: &Runtime, config: Config) -> String {
    let b = bundle(&config);
    let id = unique_id(rt.kind().name());
    let out = rt.run(&id, b.path());
    out.expect_ok("container run");
    rt.assert_no_leaks(&[&id], &[b.path()]);
    out.stdout
}

/// The value of `Key:` in a /proc status-like text.
pub fn field<'a>(text: &'a str, key: &str) -> Option<&'a str> {
    text.lines().find_map(|l| {
        l.strip_prefix(key)
            .map(|v| v.trim_start_matches(':').trim())
    })
}
