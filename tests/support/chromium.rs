//! Headless Chromium for the tests that look at a page as a browser renders it: Debian's
//! `chromium`, run once per call with a fresh profile and killed if it hangs.

use std::path::{Path, PathBuf};
use std::process::{Command, Stdio};
use std::time::{Duration, Instant};

/// Longest a browser run may take before it is killed.
const RUN_LIMIT: Duration = Duration::from_secs(30);

/// The browser binary. Panics with what to install when there is none: a missing browser
/// must fail the test, not skip it.
pub fn binary() -> PathBuf {
    let candidates = ["/usr/bin/chromium", "/usr/bin/chromium-browser"];
    let on_path = std::env::var_os("PATH")
        .map(|path| {
            std::env::split_paths(&path)
                .flat_map(|dir| [dir.join("chromium"), dir.join("chromium-browser")])
                .collect::<Vec<_>>()
        })
        .unwrap_or_default();
    on_path
        .into_iter()
        .chain(candidates.iter().map(PathBuf::from))
        .find(|candidate| candidate.is_file())
        .unwrap_or_else(|| {
            panic!(
                "this test needs headless Chromium and found none: install it with \
                 `apt-get install -y chromium` (.ci/run installs it)"
            )
        })
}

/// Runs the browser headless on `url` with `extra` flags and a new profile under `dir`;
/// returns its standard output. Blocks: call it from `spawn_blocking` in async tests.
pub fn run(dir: &Path, url: &str, extra: &[String]) -> String {
    use std::sync::atomic::{AtomicU32, Ordering};
    static PROFILE: AtomicU32 = AtomicU32::new(0);
    let profile = dir.join(format!(
        "chromium-profile-{}",
        PROFILE.fetch_add(1, Ordering::Relaxed)
    ));
    let stdout_path = profile.with_extension("stdout");
    let stderr_path = profile.with_extension("stderr");
    let mut child = Command::new(binary())
        .args([
            "--headless",
            "--no-sandbox",
            "--disable-gpu",
            "--disable-dev-shm-usage",
            "--no-first-run",
            "--no-default-browser-check",
            "--disable-extensions",
            "--disable-background-networking",
            "--disable-component-update",
            "--disable-sync",
        ])
        .arg(format!("--user-data-dir={}", profile.display()))
        .args(extra)
        .arg(url)
        .env("HOME", dir)
        .stdin(Stdio::null())
        // Files rather than pipes: the browser's output cannot fill a pipe nobody reads
        // while the deadline is polled.
        .stdout(std::fs::File::create(&stdout_path).unwrap())
        .stderr(std::fs::File::create(&stderr_path).unwrap())
        .spawn()
        .unwrap_or_else(|e| panic!("cannot start chromium: {e}"));
    let deadline = Instant::now() + RUN_LIMIT;
    let status = loop {
        if let Some(status) = child.try_wait().unwrap() {
            break status;
        }
        if Instant::now() > deadline {
            let _ = child.kill();
            let _ = child.wait();
            panic!(
                "chromium did not finish within {RUN_LIMIT:?}: {}",
                std::fs::read_to_string(&stderr_path).unwrap_or_default()
            );
        }
        std::thread::sleep(Duration::from_millis(50));
    };
    let stdout = std::fs::read_to_string(&stdout_path).unwrap_or_default();
    assert!(
        status.success(),
        "chromium failed ({status}): {}",
        std::fs::read_to_string(&stderr_path).unwrap_or_default()
    );
    stdout
}

/// The page's DOM after its scripts ran for `budget_ms` of virtual time.
pub fn dump_dom(dir: &Path, url: &str, budget_ms: u32) -> String {
    run(
        dir,
        url,
        &[
            "--dump-dom".to_owned(),
            format!("--virtual-time-budget={budget_ms}"),
        ],
    )
}

/// Writes a screenshot of the page at `width`x`height` to `file`.
pub fn screenshot(dir: &Path, url: &str, file: &Path, width: u32, height: u32, budget_ms: u32) {
    run(
        dir,
        url,
        &[
            format!("--screenshot={}", file.display()),
            format!("--window-size={width},{height}"),
            format!("--virtual-time-budget={budget_ms}"),
            "--hide-scrollbars".to_owned(),
        ],
    );
}
