//! `makemore train --stats-every`: the health lines, the warnings of a broken run (and none on a
//! healthy one), `stats.json`, and its records across a resume.

#[allow(dead_code)]
mod common;

use std::path::Path;

use common::{makemore, names_path};
use serde_json::Value;

fn s(p: &Path) -> &str {
    p.to_str().unwrap()
}

fn train(out: &Path, extra: &[&str]) -> common::Run {
    let names = names_path();
    let mut args = vec![
        "train",
        "--input",
        s(&names),
        "--out",
        s(out),
        "--samples",
        "0",
    ];
    args.extend(extra);
    makemore(&args).ok()
}

fn records(out: &Path) -> Vec<Value> {
    let text = std::fs::read_to_string(out.join("stats.json")).unwrap();
    let v: Value = serde_json::from_str(&text).unwrap();
    v["records"].as_array().unwrap().clone()
}

fn steps(records: &[Value]) -> Vec<u64> {
    records
        .iter()
        .map(|r| r["step"].as_u64().unwrap())
        .collect()
}

#[test]
fn a_broken_run_warns_and_a_healthy_one_does_not() {
    let dir = tempfile::tempdir().unwrap();
    let (bad, good) = (dir.path().join("bad"), dir.path().join("good"));
    let args = ["--steps", "401", "--stats-every", "200", "--threads", "1"];
    let run = train(&bad, &[&args[..], &["--lr", "10"]].concat());
    let stats: Vec<&str> = run
        .stdout
        .lines()
        .filter(|l| l.starts_with("stats "))
        .collect();
    assert_eq!(stats.len(), 3, "{}", run.dump());
    assert!(
        stats[2].starts_with("stats     400: h saturated"),
        "{stats:?}"
    );
    // lr 10 saturates the tanh layer within 200 steps, kills units and makes the updates large
    for want in [
        "% of h is saturated",
        "dead: no gradient",
        "update:data ratio is 10^",
    ] {
        assert!(
            run.stdout
                .lines()
                .any(|l| l.starts_with("warning: step 400") && l.contains(want)),
            "no warning with {want:?}:\n{}",
            run.dump()
        );
    }
    let r = records(&bad);
    assert_eq!(steps(&r), [0, 200, 400]);
    assert!(r[2]["saturated"].as_f64().unwrap() > 0.3);
    assert!(r[2]["dead_units"].as_u64().unwrap() > 0);
    let tensors = r[2]["tensors"].as_object().unwrap();
    assert_eq!(tensors.len(), 7);
    for t in tensors.values() {
        assert!(
            t["grad"]["std"].is_number() && t["data"]["std"].is_number(),
            "{t}"
        );
    }
    assert!(
        run.stdout.contains("stats.json, stats.svg, stats.png"),
        "{}",
        run.dump()
    );
    // the last record's histograms: h's of every value of the batch, each judged weight's
    let end =
        &serde_json::from_str::<Value>(&std::fs::read_to_string(bad.join("stats.json")).unwrap())
            .unwrap()["end"];
    assert_eq!(end["step"], 400);
    let total = |h: &Value| {
        h["counts"]
            .as_array()
            .unwrap()
            .iter()
            .map(|c| c.as_u64().unwrap())
            .sum::<u64>()
    };
    assert_eq!(total(&end["h"]), 32 * 200);
    for (name, len) in [("C", 27 * 10), ("W1", 30 * 200), ("W2", 200 * 27)] {
        assert_eq!(total(&end["grads"][name]), len, "{name}");
    }
    let png = std::fs::read(bad.join("stats.png")).unwrap();
    assert_eq!(&png[..4], b"\x89PNG");
    let svg = std::fs::read_to_string(bad.join("stats.svg")).unwrap();
    assert!(svg.contains("distribution of h at step 400"));

    // the notebook's lr: healthy, no warning
    let run = train(&good, &args);
    assert!(!run.stdout.contains("warning:"), "{}", run.dump());
    let r = records(&good);
    assert!(r[2]["saturated"].as_f64().unwrap() < 0.3);
    let u = r[2]["tensors"]["W1"]["update_to_data"].as_f64().unwrap();
    assert!((-5.0..-1.0).contains(&u), "W1's update:data {u}");
}

#[test]
fn records_continue_across_a_resume_with_the_same_values() {
    let dir = tempfile::tempdir().unwrap();
    let (whole, parts) = (dir.path().join("whole"), dir.path().join("parts"));
    let args = ["--stats-every", "100", "--threads", "1"];
    train(&whole, &[&args[..], &["--steps", "500"]].concat());
    train(&parts, &[&args[..], &["--steps", "300"]].concat());
    train(
        &parts,
        &[&args[..], &["--steps", "500", "--resume"]].concat(),
    );
    let (a, b) = (records(&whole), records(&parts));
    assert_eq!(steps(&b), [0, 100, 200, 300, 400]);
    assert_eq!(a, b, "a resumed run's records are the uninterrupted run's");
    let end = |out: &Path| {
        let text = std::fs::read_to_string(out.join("stats.json")).unwrap();
        serde_json::from_str::<Value>(&text).unwrap()["end"].clone()
    };
    assert_eq!(end(&whole)["step"], 400);
    assert_eq!(
        end(&whole),
        end(&parts),
        "the histograms of the last record"
    );

    // a new run into the directory does not keep the earlier run's records or pictures
    train(&parts, &["--steps", "10"]);
    for file in ["stats.json", "stats.svg", "stats.png"] {
        assert!(!parts.join(file).exists(), "{file}");
    }
}
