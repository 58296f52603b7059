//! `argon lint` as a user runs it: the upstream corpus, Argon's examples and
//! bad input.

use argon_e2e::{argon, conformance_dir};

fn stdout(o: &std::process::Output) -> String {
    String::from_utf8_lossy(&o.stdout).into_owned()
}

/// Each upstream example is its own set (the examples reuse port 12000 and
/// the same endpoints, which is only a conflict when they run together).
#[test]
fn every_upstream_example_lints_without_error() {
    let files = walk(&conformance_dir());
    assert_eq!(files.len(), 111, "the corpus has 111 manifests");
    let mut warnings = String::new();
    for file in &files {
        let out = argon(&["lint", file.to_str().unwrap()]);
        let text = stdout(&out);
        assert!(!text.contains(": error: "), "{text}");
        assert!(
            out.status.success(),
            "{}: {text}\n{}",
            file.display(),
            String::from_utf8_lossy(&out.stderr)
        );
        warnings.push_str(&text);
    }
    // Kinds Argon does not run yet are named in warnings.
    assert!(
        warnings.contains("event source kind 'sns' is not supported by Argon yet"),
        "{warnings}"
    );
    assert!(
        warnings.contains("trigger kind 'awsLambda' is not supported by Argon yet"),
        "{warnings}"
    );
}

/// Linted as one folder, the corpus has no error: the examples that share
/// port 12000 and an endpoint are deployed one pod each upstream, so the
/// clash is a warning.
#[test]
fn the_whole_upstream_corpus_lints_as_one_set_without_error() {
    let out = argon(&["lint", conformance_dir().to_str().unwrap()]);
    let text = stdout(&out);
    assert!(!text.contains(": error: "), "{text}");
    assert!(out.status.success(), "{text}");
    assert!(
        text.contains("is already used by") && text.contains("an error where they run together (argon run)"),
        "{text}"
    );
}

/// Run together, the examples' shared webhook endpoints are errors.
#[test]
fn colliding_webhooks_are_warnings_in_lint_and_errors_in_run() {
    let dir = conformance_dir().join("event-sources");
    let github = dir.join("github.yaml");
    let gitlab = dir.join("gitlab.yaml");
    let out = argon(&["lint", github.to_str().unwrap(), gitlab.to_str().unwrap()]);
    let text = stdout(&out);
    assert!(out.status.success(), "{text}");
    assert!(
        text.contains(
            "gitlab.yaml:21:9: warning: port 12000 endpoint /push is already used by github/example (github)"
        ),
        "{text}"
    );
    let state = tempfile::tempdir().unwrap();
    let out = argon(&[
        "run",
        github.to_str().unwrap(),
        gitlab.to_str().unwrap(),
        "--state-dir",
        state.path().to_str().unwrap(),
        "--api-addr",
        "127.0.0.1:0",
    ]);
    assert_eq!(out.status.code(), Some(1));
    let err = String::from_utf8_lossy(&out.stderr);
    assert!(
        err.contains("gitlab.yaml:21:9: error: port 12000 endpoint /push is already used by github/example (github); webhooks that run together need distinct ports or endpoints"),
        "{err}"
    );
    assert!(err.contains("nothing was started"), "{err}");
}

fn walk(dir: &std::path::Path) -> Vec<std::path::PathBuf> {
    let mut out = Vec::new();
    for entry in std::fs::read_dir(dir).unwrap() {
        let p = entry.unwrap().path();
        if p.is_dir() { out.extend(walk(&p)) } else { out.push(p) }
    }
    out.sort();
    out
}

#[test]
fn committed_examples_lint_clean() {
    let out = argon(&["lint", "examples"]);
    let text = stdout(&out);
    assert!(out.status.success(), "{text}");
    assert!(!text.contains(": error: "), "{text}");
}

#[test]
fn a_typo_is_reported_with_position_path_and_suggestion() {
    let dir = tempfile::tempdir().unwrap();
    let file = dir.path().join("sensor.yaml");
    std::fs::write(
        &file,
        "apiVersion: argoproj.io/v1alpha1
kind: Sensor
metadata:
  name: s
spec:
  dependencies:
    - name: dep
      eventSourceName: es
      eventName: e
  triggers:
    - template:
        name: t
        k8s:
          operation: create
          sorce:
            resource: {}
",
    )
    .unwrap();
    let out = argon(&["lint", file.to_str().unwrap()]);
    assert_eq!(out.status.code(), Some(1));
    let text = stdout(&out);
    let expected = format!(
        "{}:15:11: error: unknown field 'sorce' at spec.triggers[0].template.k8s.sorce; did you mean 'source'?",
        file.display()
    );
    assert!(text.lines().any(|l| l == expected), "{text}");
}

#[test]
fn bad_files_give_one_clear_error_each() {
    let dir = tempfile::tempdir().unwrap();
    let cases: Vec<(&str, Vec<u8>, &str)> = vec![
        (
            "not-yaml.yaml",
            b"kind: [unclosed\n  : x: y".to_vec(),
            "not valid YAML or JSON",
        ),
        ("empty.yaml", Vec::new(), "holds no manifest"),
        ("big.yaml", "a: 1\n".repeat(2_000_000).into_bytes(), "file is too large"),
        (
            "nokind.yaml",
            b"apiVersion: argoproj.io/v1alpha1\nmetadata:\n  name: x\n".to_vec(),
            "document has no 'kind'",
        ),
        ("binary.yaml", vec![0xff, 0xfe, 0x00, 0x01], "not UTF-8"),
    ];
    for (name, body, message) in cases {
        let file = dir.path().join(name);
        std::fs::write(&file, body).unwrap();
        let out = argon(&["lint", file.to_str().unwrap()]);
        let text = stdout(&out);
        assert_eq!(out.status.code(), Some(1), "{name}: {text}");
        assert_eq!(text.lines().count(), 1, "{name}: {text}");
        assert!(text.starts_with(&format!("{}:", file.display())), "{name}: {text}");
        assert!(text.contains(message), "{name}: {text}");
        assert!(!String::from_utf8_lossy(&out.stderr).contains("panicked"), "{name}");
    }
}
