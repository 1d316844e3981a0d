//! Builds `ui/` with npm (when its output is missing or older than its sources) and generates
//! `assets.rs` in `OUT_DIR`: a sorted table of `include_bytes!` over copies of the built files,
//! each with a gzip variant when that is smaller.
//!
//! The npm build writes into `OUT_DIR`, never into `ui/dist`, so concurrent cargo invocations
//! (clippy, test, build) cannot race on one output directory and cargo never sees a watched
//! path change under it. A `ui/dist` that is newer than every source (someone ran
//! `npm run build`) is used as is. When npm is missing or the build fails, the build still
//! succeeds: it prints a cargo warning and embeds a page that says how to build the UI.

use std::ffi::OsStr;
use std::fmt::Write as _;
use std::fs;
use std::io::Write as _;
use std::path::{Path, PathBuf};
use std::process::Command;
use std::time::{Duration, SystemTime};

/// Inputs of the npm build, relative to `ui/`.
const SOURCES: &[&str] = &[
    "src",
    "public",
    "index.html",
    "package.json",
    "package-lock.json",
    "vite.config.ts",
    "tsconfig.json",
];

fn main() {
    let manifest = PathBuf::from(std::env::var_os("CARGO_MANIFEST_DIR").expect("cargo sets it"));
    let out = PathBuf::from(std::env::var_os("OUT_DIR").expect("cargo sets it"));
    let ui = manifest.join("..").join("..").join("ui");
    println!("cargo:rerun-if-changed=build.rs");
    println!("cargo:rerun-if-env-changed=FAULTLINE_UI_SKIP_NPM");
    println!("cargo:rerun-if-env-changed=NPM");
    // Only existing paths: cargo treats a missing watched path as always changed.
    for s in SOURCES.iter().map(|s| ui.join(s)).filter(|p| p.exists()) {
        println!("cargo:rerun-if-changed={}", s.display());
    }
    let dist = ui.join("dist");
    if dist.join("index.html").exists() {
        println!("cargo:rerun-if-changed={}", dist.display());
    }

    let (files, note) = match built_assets(&ui, &out) {
        Ok(dir) => (collect(&dir), String::new()),
        Err(Failure {
            reason,
            npm_missing,
        }) => {
            println!("cargo:warning=faultline-ui: the web UI was not built ({reason}); the binary will serve a page that explains how to build it. Fix: cd ui && npm ci && npm run build, then rebuild.");
            if npm_missing {
                // Notice a ui/dist built by hand later (a missing path makes cargo rerun us).
                println!("cargo:rerun-if-changed={}", dist.display());
            }
            (
                vec![("/index.html".to_string(), fallback_page(&reason))],
                reason,
            )
        }
    };
    generate(&out, &files, &note);
}

struct Failure {
    reason: String,
    npm_missing: bool,
}

fn fail(reason: impl Into<String>) -> Failure {
    Failure {
        reason: reason.into(),
        npm_missing: false,
    }
}

/// Returns the directory holding the built UI, building it if needed.
fn built_assets(ui: &Path, out: &Path) -> Result<PathBuf, Failure> {
    if !ui.join("package.json").exists() {
        return Err(fail(format!("{} has no package.json", ui.display())));
    }
    let newest_source = SOURCES
        .iter()
        .map(|s| newest_mtime(&ui.join(s)))
        .max()
        .flatten();
    let dist_index = ui.join("dist").join("index.html");
    if let (Some(src), Ok(built)) = (newest_source, mtime(&dist_index)) {
        if built >= src {
            return Ok(ui.join("dist"));
        }
    }
    if std::env::var_os("FAULTLINE_UI_SKIP_NPM").is_some() {
        return Err(fail(
            "FAULTLINE_UI_SKIP_NPM is set and ui/dist is missing or stale",
        ));
    }
    let npm = std::env::var_os("NPM").unwrap_or_else(|| "npm".into());
    match Command::new(&npm).arg("--version").output() {
        Ok(o) if o.status.success() => {}
        _ => {
            return Err(Failure {
                reason: "npm (Node.js 20 or newer) was not found on PATH".into(),
                npm_missing: true,
            })
        }
    }
    npm_ci_if_needed(ui, &npm)?;
    let target = out.join("ui-dist");
    let status = Command::new(&npm)
        .current_dir(ui)
        .args(["run", "build", "--", "--emptyOutDir", "--outDir"])
        .arg(&target)
        .status()
        .map_err(|e| fail(format!("cannot run npm run build: {e}")))?;
    if !status.success() || !target.join("index.html").exists() {
        return Err(fail(format!("`npm run build` in ui/ failed ({status})")));
    }
    Ok(target)
}

/// Runs `npm ci` when `node_modules` is missing or older than `package-lock.json`, under a
/// lock file so that concurrent cargo invocations do not install at the same time.
fn npm_ci_if_needed(ui: &Path, npm: &OsStr) -> Result<(), Failure> {
    let installed = ui.join("node_modules").join(".package-lock.json");
    let fresh = || match (mtime(&installed), mtime(&ui.join("package-lock.json"))) {
        (Ok(i), Ok(l)) => i >= l,
        _ => false,
    };
    if fresh() {
        return Ok(());
    }
    let lock = ui.join(".npm-ci.lock");
    let deadline = SystemTime::now() + Duration::from_secs(900);
    loop {
        match fs::OpenOptions::new()
            .write(true)
            .create_new(true)
            .open(&lock)
        {
            Ok(_) => break,
            Err(_) if SystemTime::now() < deadline => {
                // A lock older than 15 minutes belongs to a process that died.
                if let Ok(t) = mtime(&lock) {
                    if t.elapsed().unwrap_or_default() > Duration::from_secs(900) {
                        let _ = fs::remove_file(&lock);
                    }
                }
                std::thread::sleep(Duration::from_millis(500));
            }
            Err(e) => return Err(fail(format!("cannot take {}: {e}", lock.display()))),
        }
    }
    let result = if fresh() {
        Ok(())
    } else {
        match Command::new(npm)
            .current_dir(ui)
            .args(["ci", "--no-audit", "--no-fund"])
            .status()
        {
            Ok(s) if s.success() => Ok(()),
            Ok(s) => Err(fail(format!("`npm ci` in ui/ failed ({s})"))),
            Err(e) => Err(fail(format!("cannot run npm ci: {e}"))),
        }
    };
    let _ = fs::remove_file(&lock);
    result
}

fn mtime(p: &Path) -> std::io::Result<SystemTime> {
    fs::metadata(p)?.modified()
}

fn newest_mtime(p: &Path) -> Option<SystemTime> {
    let meta = fs::metadata(p).ok()?;
    let own = meta.modified().ok();
    if !meta.is_dir() {
        return own;
    }
    let children = fs::read_dir(p).ok()?.filter_map(|e| e.ok());
    children
        .filter_map(|e| newest_mtime(&e.path()))
        .chain(own)
        .max()
}

/// Every file under `dir`, as (URL path, bytes), sorted by path.
fn collect(dir: &Path) -> Vec<(String, Vec<u8>)> {
    fn walk(root: &Path, dir: &Path, acc: &mut Vec<(String, Vec<u8>)>) {
        let mut entries: Vec<_> = fs::read_dir(dir)
            .expect("read built UI")
            .filter_map(|e| e.ok())
            .collect();
        entries.sort_by_key(|e| e.path());
        for e in entries {
            let p = e.path();
            if p.is_dir() {
                walk(root, &p, acc);
            } else {
                let rel = p.strip_prefix(root).expect("under root");
                let url = rel
                    .components()
                    .map(|c| c.as_os_str().to_string_lossy().into_owned())
                    .fold(String::new(), |acc, c| acc + "/" + &c);
                acc.push((url, fs::read(&p).expect("read built file")));
            }
        }
    }
    let mut acc = Vec::new();
    walk(dir, dir, &mut acc);
    acc.sort_by(|a, b| a.0.cmp(&b.0));
    acc
}

fn content_type(path: &str) -> &'static str {
    let ext = path.rsplit('.').next().unwrap_or("");
    match ext {
        "html" => "text/html; charset=utf-8",
        "js" | "mjs" => "text/javascript; charset=utf-8",
        "css" => "text/css; charset=utf-8",
        "json" | "map" => "application/json",
        "webmanifest" => "application/manifest+json",
        "svg" => "image/svg+xml",
        "png" => "image/png",
        "ico" => "image/x-icon",
        "woff2" => "font/woff2",
        "txt" => "text/plain; charset=utf-8",
        _ => "application/octet-stream",
    }
}

fn compressible(ct: &str) -> bool {
    ct.starts_with("text/") || ct.contains("json") || ct.contains("svg")
}

/// FNV-1a 64: a stable content hash for ETags (no dependency needed).
fn fnv1a(bytes: &[u8]) -> u64 {
    bytes.iter().fold(0xcbf2_9ce4_8422_2325, |h, b| {
        (h ^ u64::from(*b)).wrapping_mul(0x0100_0000_01b3)
    })
}

fn generate(out: &Path, files: &[(String, Vec<u8>)], note: &str) {
    let embed = out.join("embed");
    let _ = fs::remove_dir_all(&embed);
    fs::create_dir_all(&embed).expect("create embed dir");
    let mut code = String::from("// Generated by faultline-ui's build.rs.\n");
    writeln!(code, "pub(crate) static ASSETS: &[Asset] = &[").unwrap();
    for (i, (path, bytes)) in files.iter().enumerate() {
        let ct = content_type(path);
        let raw = embed.join(format!("{i}.raw"));
        fs::write(&raw, bytes).expect("write asset copy");
        let mut gzip = "None".to_string();
        if compressible(ct) && bytes.len() > 256 {
            let mut enc = flate2::write::GzEncoder::new(Vec::new(), flate2::Compression::best());
            enc.write_all(bytes).expect("gzip");
            let gz = enc.finish().expect("gzip");
            if gz.len() < bytes.len() {
                let gz_path = embed.join(format!("{i}.gz"));
                fs::write(&gz_path, gz).expect("write gzip copy");
                gzip = format!("Some(include_bytes!({:?}))", gz_path.display().to_string());
            }
        }
        writeln!(
            code,
            "    Asset {{ path: {path:?}, content_type: {ct:?}, etag: \"\\\"{:016x}\\\"\", body: include_bytes!({:?}), gzip: {gzip} }},",
            fnv1a(bytes),
            raw.display().to_string(),
        )
        .unwrap();
    }
    writeln!(code, "];").unwrap();
    writeln!(
        code,
        "pub(crate) const BUILD_PROBLEM: Option<&str> = {};",
        if note.is_empty() {
            "None".to_string()
        } else {
            format!("Some({note:?})")
        }
    )
    .unwrap();
    fs::write(out.join("assets.rs"), code).expect("write assets.rs");
}

fn escape_html(s: &str) -> String {
    s.replace('&', "&amp;")
        .replace('<', "&lt;")
        .replace('>', "&gt;")
}

/// The page embedded when the UI could not be built: plain HTML, no script, no inline style
/// (the Content-Security-Policy would block them anyway).
fn fallback_page(reason: &str) -> Vec<u8> {
    format!(
        r#"<!doctype html>
<html lang="en"><head><meta charset="utf-8"><title>Faultline: web UI not built</title></head>
<body>
<h1>The Faultline web UI was not built into this binary</h1>
<p>Reason: {}</p>
<p>The query API is running: <a href="/api/services">/api/services</a>.</p>
<h2>How to build the UI</h2>
<ol>
<li>Install Node.js 20 or newer with npm (for example <code>apt-get install -y nodejs npm</code>).</li>
<li>From the repository root run <code>cd ui &amp;&amp; npm ci &amp;&amp; npm run build</code>.</li>
<li>Rebuild Faultline (<code>cargo build --release</code>) and restart <code>faultline serve</code>.</li>
</ol>
<p>The cargo build drives these steps itself when <code>npm</code> is on its PATH.</p>
</body></html>
"#,
        escape_html(reason)
    )
    .into_bytes()
}
