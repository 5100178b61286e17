//! Links the unwinder statically on Linux with glibc, so that no `libgcc_s.so.1` is loaded.
//!
//! std names `libgcc_s` for `_Unwind_*` (used here only to print a backtrace: the release
//! profile aborts on panic). Loading it costs every clawsess process ~0.1 ms (a second
//! library to map and relocate, and its constructor's `cpuid` probes, which trap in a VM):
//! a sixth of a hook's start-up, measured in docs/BENCHMARKS.md. `libgcc_eh.a`, the same
//! unwinder as a static archive (what `gcc -static-libgcc` uses), is put on the link line
//! before std's `-lgcc_s`, which `--as-needed` then leaves out. Where the C compiler has no
//! `libgcc_eh.a` (another toolchain), nothing changes.

use std::path::Path;
use std::process::Command;

fn main() {
    println!("cargo:rerun-if-changed=build.rs");
    println!("cargo:rerun-if-env-changed=CC");
    let var = |name: &str| std::env::var(name).unwrap_or_default();
    let static_crt = var("CARGO_CFG_TARGET_FEATURE").split(',').any(|f| f == "crt-static");
    if var("CARGO_CFG_TARGET_OS") != "linux" || var("CARGO_CFG_TARGET_ENV") != "gnu" || static_crt {
        return;
    }
    // Only for a native build: a cross compiler's archive would be another one.
    if var("TARGET") != var("HOST") {
        return;
    }
    let cc = std::env::var("CC").unwrap_or_else(|_| "cc".into());
    let Ok(out) = Command::new(&cc).arg("-print-file-name=libgcc_eh.a").output() else { return };
    let path = String::from_utf8_lossy(&out.stdout).trim().to_owned();
    // `cc` prints the bare name when it has no such file.
    if !out.status.success() || !Path::new(&path).is_absolute() || !Path::new(&path).is_file() {
        return;
    }
    // `-bundle`: linked where the executable is linked, not copied into the library's rlib.
    println!("cargo:rustc-link-lib=static:-bundle=gcc_eh");
}
