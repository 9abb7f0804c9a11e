//! The life of a run and its output folder, through the `l3d` program: a run owns its folder
//! (a second one is refused and the folder stays the first one's, whole), results of an
//! earlier run are replaced only when asked, a run killed with `kill -9` resumes from its
//! last periodic checkpoint to the same bits as a run never stopped, flags that contradict
//! the checkpoint are refused, `report` notices weights replaced after the run, configs work
//! from any directory, and absurd settings are refused before anything is allocated.
//!
//! No test assumes anything about timing: a child run is observed by polling for the files it
//! writes (with a generous timeout), and held still with `SIGSTOP` where it must not finish.

use crate::program::{assert_fails, l3d, pytorch_layout_files, scratch};
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Output, Stdio};
use std::time::{Duration, Instant};

/// Waits until `ready` holds, polling; panics after ten minutes (a loaded machine is slow,
/// never that slow).
fn wait_for(what: &str, mut ready: impl FnMut() -> bool) {
    let start = Instant::now();
    while !ready() {
        assert!(
            start.elapsed() < Duration::from_secs(600),
            "timed out waiting for {what}"
        );
        std::thread::sleep(Duration::from_millis(2));
    }
}

/// Starts `l3d` with `args`, quietly, as a child process.
fn spawn(args: &[&str]) -> Child {
    Command::new(env!("CARGO_BIN_EXE_l3d"))
        .arg("--quiet")
        .args(args)
        .stdout(Stdio::null())
        .stderr(Stdio::piped())
        .spawn()
        .expect("the l3d binary starts")
}

fn signal(child: &Child, name: &str) {
    let status = Command::new("kill")
        .args([name, &child.id().to_string()])
        .status()
        .expect("kill runs");
    assert!(status.success(), "kill {name} failed");
}

fn succeeded(out: &Output) -> String {
    let stderr = String::from_utf8_lossy(&out.stderr).into_owned();
    assert!(out.status.success(), "{stderr}");
    stderr
}

fn json(path: &Path) -> serde_json::Value {
    serde_json::from_slice(&std::fs::read(path).unwrap()).unwrap()
}

/// The checkpoint files of the run in progress in `out`.
fn checkpoints(out: &Path) -> Vec<PathBuf> {
    let Ok(entries) = std::fs::read_dir(out.join(".staging")) else {
        return Vec::new();
    };
    let mut found: Vec<PathBuf> = entries
        .flatten()
        .map(|e| e.path())
        .filter(|p| {
            let name = p.file_name().unwrap().to_string_lossy();
            name.starts_with("checkpoint-") && name.ends_with(".json")
        })
        .collect();
    found.sort();
    found
}

/// Every file under `dir` whose name ends in `.tmp`, outside the staging folder.
fn stray_temporaries(dir: &Path) -> Vec<PathBuf> {
    let mut found = Vec::new();
    for entry in std::fs::read_dir(dir).unwrap().flatten() {
        let path = entry.path();
        if path.file_name().unwrap() == ".staging" {
            continue;
        }
        if path.is_dir() {
            found.extend(stray_temporaries(&path));
        } else if path.to_string_lossy().ends_with(".tmp") {
            found.push(path);
        }
    }
    found
}

/// A `tms` run's flags: a toy trained briefly, `epochs` epochs of decomposition.
fn tms_args(out: &Path, epochs: usize, seed: u64) -> Vec<String> {
    [
        "decompose",
        "--toy",
        "tms",
        "--train-epochs",
        "50",
        "--epochs",
        &epochs.to_string(),
        "--seed",
        &seed.to_string(),
        "--out",
        out.to_str().unwrap(),
    ]
    .map(String::from)
    .to_vec()
}

fn strs(args: &[String]) -> Vec<&str> {
    args.iter().map(String::as_str).collect()
}

/// Epochs no test waits for: a run of this many is killed once it has saved a checkpoint,
/// and resumed for the epochs the test wants (a run's schedule does not depend on its
/// length), so no test races a run to its end.
const ENDLESS: usize = 1_000_000;

/// Starts a `tms` run of [`ENDLESS`] epochs with a checkpoint every 10.
fn spawn_endless(out: &Path, seed: u64) -> Child {
    let mut args = tms_args(out, ENDLESS, seed);
    args.extend(["--checkpoint-every", "10"].map(String::from));
    spawn(&strs(&args))
}

/// Kills `child` with SIGKILL once it has saved a checkpoint in `out`; returns the epoch of
/// the newest checkpoint.
fn kill_after_a_checkpoint(mut child: Child, out: &Path) -> usize {
    wait_for("a checkpoint", || !checkpoints(out).is_empty());
    child.kill().unwrap();
    let status = child.wait().unwrap();
    assert!(!status.success(), "an endless run finished");
    let newest = checkpoints(out)
        .pop()
        .expect("the checkpoint is still there");
    json(&newest)["checkpoint"]["epoch"].as_u64().unwrap() as usize
}

#[test]
fn a_second_run_into_a_folder_in_use_is_refused_and_the_folder_stays_whole() {
    let dir = scratch("concurrent");
    let out = dir.join("run");
    let a = spawn_endless(&out, 1);
    // Once its lock names it, hold the first run still: it surely owns the folder.
    let lock = out.join(".l3d.lock");
    let pid = format!("pid {}", a.id());
    wait_for("the first run's lock", || {
        std::fs::read_to_string(&lock).is_ok_and(|t| t.contains(&pid))
    });
    signal(&a, "-STOP");
    let second = l3d(&strs(&tms_args(&out, 200, 2)));
    signal(&a, "-CONT");
    assert_fails(
        &second,
        1,
        &["is in use by another l3d run", &pid, "started 20"],
    );
    assert!(
        !out.join("config.json").exists(),
        "the refused run wrote results"
    );
    // The first run, killed and resumed to its end (taking its own stale lock over).
    let at = kill_after_a_checkpoint(a, &out);
    let o = out.to_str().unwrap();
    let total = (at + 20).to_string();
    let resumed = succeeded(&l3d(&["decompose", "--resume", o, "--epochs", &total]));
    assert!(
        resumed.contains("taking over") && resumed.contains(&pid),
        "{resumed}"
    );
    assert_eq!(json(&out.join("config.json"))["l3d"]["seed"], 1);
    assert_eq!(json(&out.join("decomposition.json"))["config"]["seed"], 1);
    for gone in [".staging", ".l3d.lock"] {
        assert!(!out.join(gone).exists(), "{gone} left behind");
    }
    // A third run into the finished folder is refused; --overwrite replaces it whole.
    assert_fails(
        &l3d(&strs(&tms_args(&out, 20, 3))),
        1,
        &["holds the results of an earlier run", "--overwrite"],
    );
    assert_eq!(json(&out.join("config.json"))["l3d"]["seed"], 1);
    let mut replace = tms_args(&out, 20, 3);
    replace.push("--overwrite".into());
    succeeded(&l3d(&strs(&replace)));
    assert_eq!(json(&out.join("config.json"))["l3d"]["seed"], 3);
    assert_eq!(json(&out.join("decomposition.json"))["config"]["seed"], 3);
}

#[test]
fn a_lock_left_by_a_killed_run_is_taken_over_with_a_note() {
    let dir = scratch("stale-lock");
    let out = dir.join("run");
    std::fs::create_dir_all(&out).unwrap();
    std::fs::write(
        out.join(".l3d.lock"),
        "pid 999999999\nstarted 2026-01-01 00:00:00 UTC\n",
    )
    .unwrap();
    let stderr = succeeded(&l3d(&strs(&tms_args(&out, 20, 0))));
    assert!(stderr.contains("taking over"), "{stderr}");
    assert!(stderr.contains("pid 999999999"), "{stderr}");
    assert!(out.join("config.json").exists());
}

/// A run killed with `kill -9` after a periodic checkpoint resumes to the same bits as a run
/// never stopped; before that, a resume whose flags contradict the checkpoint is refused and
/// leaves config.json as it was, and the killed run left no temporary file outside staging.
/// The resume sets its own `--epochs`, which the results record.
#[test]
fn a_run_killed_with_sigkill_resumes_to_the_bits_of_an_uninterrupted_run() {
    let dir = scratch("kill-resume");
    let (whole, killed) = (dir.join("whole"), dir.join("killed"));
    let at = kill_after_a_checkpoint(spawn_endless(&killed, 5), &killed);
    assert!(stray_temporaries(&killed).is_empty());
    assert!(
        !killed.join("config.json").exists(),
        "results of a killed run"
    );

    let config = killed.join(".staging/config.json");
    let before = std::fs::read(&config).unwrap();
    let k = killed.to_str().unwrap();
    let contradicting = l3d(&["decompose", "--resume", k, "--n-v", "7", "--epochs", "4500"]);
    assert_fails(&contradicting, 1, &["--n-v 7 (the run has 5)"]);
    let seed = l3d(&["decompose", "--resume", k, "--seed", "6"]);
    assert_fails(&seed, 1, &["--seed 6 (the run has 5)"]);
    let fewer = l3d(&["decompose", "--resume", k, "--epochs", "1"]);
    assert_fails(&fewer, 1, &["has already run"]);
    let model = l3d(&["decompose", "--resume", k, "--toy", "tmcs"]);
    assert_fails(&model, 2, &["cannot be used with"]);
    assert_eq!(
        std::fs::read(&config).unwrap(),
        before,
        "config.json changed"
    );

    let epochs = at + 300;
    let total = epochs.to_string();
    let resume = [
        "--quiet",
        "decompose",
        "--resume",
        k,
        "--n-v",
        "5",
        "--epochs",
        &total,
    ];
    succeeded(&l3d(&resume));
    succeeded(&l3d(&strs(&tms_args(&whole, epochs, 5))));
    for file in [
        "decomposition.safetensors",
        "decomposition.json",
        "config.json",
    ] {
        let (a, b) = (whole.join(file), killed.join(file));
        assert!(
            std::fs::read(&a).unwrap() == std::fs::read(&b).unwrap(),
            "{file} differs between the resumed run and the uninterrupted one"
        );
    }
    assert_eq!(json(&killed.join("config.json"))["l3d"]["epochs"], epochs);
    let d = json(&killed.join("decomposition.json"));
    assert_eq!(d["history"].as_array().unwrap().len(), epochs);
    assert!(
        checkpoints(&killed).is_empty() && !killed.join(".staging").exists(),
        "checkpoints left after the run completed"
    );
    // Nothing left to resume: the message says what to run instead.
    let again = l3d(&["decompose", "--resume", k]);
    assert_fails(&again, 1, &["no checkpoint in", "l3d decompose --config"]);
}

/// A user's model run, then its weights replaced: `report` and `intervene` refuse, or with
/// `--force` go on with a warning. Stray temporary files of killed writes are cleaned.
#[test]
fn report_and_intervene_refuse_weights_replaced_after_the_run() {
    let dir = scratch("provenance");
    let (arch, weights, inputs) = pytorch_layout_files(&dir);
    let out = dir.join("run");
    let o = out.to_str().unwrap();
    succeeded(&l3d(&[
        "--quiet",
        "decompose",
        "--arch",
        arch.to_str().unwrap(),
        "--weights",
        weights.to_str().unwrap(),
        "--inputs",
        inputs.to_str().unwrap(),
        "--n-v",
        "3",
        "--epochs",
        "3",
        "--batch",
        "16",
        "--out",
        o,
    ]));
    let stray = out.join("figures/.subnetworks.svg.12345.0.tmp");
    std::fs::write(&stray, b"half").unwrap();
    succeeded(&l3d(&["--quiet", "report", "--dir", o]));
    assert!(!stray.exists(), "a stray temporary file survived a report");

    // Other weights of the same shapes under the same name.
    let mut r = tensor::rng(99);
    let tensors = [
        (
            "0.weight",
            tensor::Tensor::<f32>::randn(&[16, 8], 0.4, &mut r),
        ),
        ("0.bias", tensor::Tensor::randn(&[16], 0.1, &mut r)),
        ("2.weight", tensor::Tensor::randn(&[4, 16], 0.3, &mut r)),
        ("2.bias", tensor::Tensor::randn(&[4], 0.1, &mut r)),
    ];
    nets::io::write_safetensors(
        &weights,
        tensors.iter().map(|(n, t)| (*n, t)),
        &Default::default(),
    )
    .unwrap();
    let report = l3d(&["report", "--dir", o]);
    assert_fails(
        &report,
        1,
        &[
            "the weights",
            "mlp.safetensors",
            "changed since the run",
            "--force",
        ],
    );
    let intervene = l3d(&["intervene", "--dir", o, "--subnetworks", "0"]);
    assert_fails(&intervene, 1, &["the weights", "changed since the run"]);
    let forced = succeeded(&l3d(&["report", "--dir", o, "--force"]));
    assert!(forced.contains("warning: the weights"), "{forced}");
}

/// Paths in config.json are relative to the config file: `--config`, `report` and
/// `intervene` work from another directory, and from the folder moved elsewhere.
#[test]
fn configs_work_from_any_directory() {
    let dir = scratch("relative");
    let project = dir.join("project");
    std::fs::create_dir_all(&project).unwrap();
    pytorch_layout_files(&project);
    let run_in = |cwd: &Path, args: &[&str]| {
        Command::new(env!("CARGO_BIN_EXE_l3d"))
            .current_dir(cwd)
            .args(args)
            .output()
            .unwrap()
    };
    let first = run_in(
        &project,
        &[
            "--quiet",
            "decompose",
            "--arch",
            "mlp.toml",
            "--weights",
            "mlp.safetensors",
            "--inputs",
            "x.npy",
            "--n-v",
            "3",
            "--epochs",
            "3",
            "--batch",
            "16",
            "--out",
            "out/mlp",
        ],
    );
    succeeded(&first);
    let config = json(&project.join("out/mlp/config.json"));
    assert_eq!(config["model"]["arch"], "../../mlp.toml");
    assert_eq!(config["data"]["path"], "../../x.npy");
    let elsewhere = dir.join("elsewhere");
    std::fs::create_dir_all(&elsewhere).unwrap();
    let again = run_in(
        &elsewhere,
        &[
            "--quiet",
            "decompose",
            "--config",
            "../project/out/mlp/config.json",
            "--out",
            "again",
        ],
    );
    succeeded(&again);
    let a = std::fs::read(project.join("out/mlp/decomposition.safetensors")).unwrap();
    let b = std::fs::read(elsewhere.join("again/decomposition.safetensors")).unwrap();
    assert!(
        a == b,
        "the same config gave other factors from another directory"
    );
    succeeded(&run_in(
        &elsewhere,
        &["--quiet", "report", "--dir", "../project/out/mlp"],
    ));
    let intervene = [
        "--quiet",
        "intervene",
        "--dir",
        "../project/out/mlp",
        "--subnetworks",
        "1",
    ];
    succeeded(&run_in(&elsewhere, &intervene));
}

/// A saved toy decomposed without `--out` writes to a fresh folder, never the toy's own;
/// `--out` naming the toy's folder is refused. The "repeat with" command is shell-quoted.
#[test]
fn results_never_go_into_the_input_model_folder() {
    let dir = scratch("model-dir");
    let run_in = |args: &[&str]| {
        Command::new(env!("CARGO_BIN_EXE_l3d"))
            .current_dir(&dir)
            .args(args)
            .output()
            .unwrap()
    };
    let train = [
        "--quiet", "train", "--model", "tms", "--epochs", "50", "--out", "out/tms",
    ];
    succeeded(&run_in(&train));
    let decompose = ["decompose", "--model-dir", "out/tms", "--epochs", "5"];
    succeeded(&run_in(&decompose));
    assert!(
        !dir.join("out/tms/config.json").exists(),
        "results in the model's folder"
    );
    assert!(dir.join("out/tms-2/config.json").exists());
    let into_model = run_in(&["decompose", "--model-dir", "out/tms", "--out", "out/tms"]);
    assert_fails(&into_model, 1, &["holds the run's input", "--out DIR"]);
    let spaced = run_in(&[
        "decompose",
        "--model-dir",
        "out/tms",
        "--epochs",
        "5",
        "--out",
        "my run",
    ]);
    let stdout = String::from_utf8_lossy(&spaced.stdout).into_owned();
    succeeded(&spaced);
    assert!(stdout.contains("--config 'my run/config.json'"), "{stdout}");
}

/// Absurd settings are refused with a message naming the flag, before anything is written
/// or allocated; pointless ones are warned about.
#[test]
fn absurd_values_are_refused_and_pointless_ones_warned_about() {
    let dir = scratch("absurd");
    let out = dir.join("run");
    let o = out.to_str().unwrap();
    let tms = |extra: &[&str]| {
        let mut args = vec![
            "decompose",
            "--toy",
            "tms",
            "--train-epochs",
            "50",
            "--out",
            o,
        ];
        args.extend_from_slice(extra);
        l3d(&args)
    };
    let memory = tms(&["--n-v", "10000000"]);
    assert_fails(
        &memory,
        1,
        &["would need about", "TB of memory", "/proc/meminfo", "--n-v"],
    );
    assert_fails(&tms(&["--epochs", "0"]), 1, &["--epochs 0"]);
    let warm = tms(&["--epochs", "100", "--warm-start", "100"]);
    assert_fails(
        &warm,
        1,
        &["--warm-start 100 is not shorter than the run (--epochs 100)"],
    );
    assert!(!out.exists(), "a refused run left its folder");

    let (arch, weights, inputs) = pytorch_layout_files(&dir);
    let (a, w, x) = (
        arch.to_str().unwrap(),
        weights.to_str().unwrap(),
        inputs.to_str().unwrap(),
    );
    let user = |extra: &[&str]| {
        let mut args = vec!["decompose", "--arch", a, "--weights", w, "--out", o];
        args.extend_from_slice(extra);
        l3d(&args)
    };
    let samples = user(&["--inputs", x, "--samples", "50"]);
    assert_fails(&samples, 1, &["--samples", "--inputs"]);
    let no_inputs = user(&[]);
    assert_fails(&no_inputs, 1, &["--inputs FILE", "--sparse-features N"]);
    let stderr = String::from_utf8_lossy(&no_inputs.stderr).into_owned();
    assert!(
        !stderr.contains("--data"),
        "a hint names a flag that does not exist: {stderr}"
    );
    let full = user(&[
        "--inputs", x, "--rank", "9", "--epochs", "2", "--batch", "16",
    ]);
    let stderr = succeeded(&full);
    assert!(
        stderr.contains("rank 9 for '0.weight' [16, 8] is more than its full rank 8"),
        "{stderr}"
    );

    // A config naming a tensor the model does not have in its ranks (beside the run's
    // folder, so that its relative paths still lead to the inputs).
    let mut config = json(&out.join("config.json"));
    config["l3d"]["ranks"] = serde_json::json!({ "1.weight": 2 });
    let edited = dir.join("edited/config.json");
    std::fs::create_dir_all(edited.parent().unwrap()).unwrap();
    std::fs::write(&edited, config.to_string()).unwrap();
    let other = dir.join("other");
    let ranks = l3d(&[
        "decompose",
        "--config",
        edited.to_str().unwrap(),
        "--out",
        other.to_str().unwrap(),
    ]);
    assert_fails(
        &ranks,
        1,
        &[
            "ranks: '1.weight' is not a parameter of the model",
            "0.weight",
        ],
    );

    for delta in ["NaN", "1e30", "inf"] {
        let sweep = l3d(&[
            "intervene",
            "--dir",
            o,
            "--subnetworks",
            "0",
            "--delta",
            delta,
        ]);
        assert_fails(
            &sweep,
            1,
            &["--delta", "finite number of at most 100 times"],
        );
    }
}

/// A path that is not valid UTF-8 is named in the error, and no folder is left behind.
#[test]
fn a_path_that_is_not_utf8_is_named() {
    use std::os::unix::ffi::OsStrExt;
    let dir = scratch("not-utf8");
    let (arch, weights, inputs) = pytorch_layout_files(&dir);
    let odd = dir.join(std::ffi::OsStr::from_bytes(b"mlp-\xff.toml"));
    std::fs::rename(&arch, &odd).unwrap();
    let out = dir.join("run");
    let result = Command::new(env!("CARGO_BIN_EXE_l3d"))
        .arg("decompose")
        .arg("--arch")
        .arg(&odd)
        .args([
            "--weights",
            weights.to_str().unwrap(),
            "--inputs",
            inputs.to_str().unwrap(),
        ])
        .args(["--out", out.to_str().unwrap()])
        .output()
        .unwrap();
    assert_fails(&result, 1, &["is not valid UTF-8", "mlp-\u{fffd}.toml"]);
    assert!(!out.exists(), "a refused run left its folder");
}
