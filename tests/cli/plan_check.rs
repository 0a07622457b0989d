//! `orch plan check`: one test per kind of error, plus the bad inputs of issue 2.

use std::fmt::Write;
use std::fs;

use crate::common::TestEnv;

fn check(plan: &str, name: &str) -> String {
    let env = TestEnv::new();
    env.init_repo();
    env.write(name, plan);
    env.run(["plan", "check", "--plan", name])
}

#[test]
fn a_valid_plan_prints_counts() {
    let out = check(
        r#"
title = "Payments"
[[phase]]
id = "P1"
[[phase.milestone]]
id = "M1"
[[phase.milestone.task]]
id = "T1"
[[phase.milestone.task.subtask]]
id = "S1"
[[phase.milestone.task.subtask]]
id = "S2"
depends_on = ["S1"]
[[phase.milestone.task]]
id = "P1.M1.T2"
depends_on = ["T1", { id = "P1.M2", required = false }]
[[phase.milestone]]
id = "M2"
depends_on = ["P1.M1.T1"]
[[phase.milestone.task]]
id = "T1"
"#,
        "plan.toml",
    );
    insta::assert_snapshot!(out, @"plan.toml: 3 tasks, 2 subtasks, 4 dependencies, 3 dependency levels");
}

#[test]
fn toml_syntax_error() {
    insta::assert_snapshot!(check("[[task]]\nid = \"T1\nx", "plan.toml"), @"
    ------- stderr -------
    plan.toml:3:2: key with no value, expected `=`
    error: 1 error in `plan.toml`
    [exit status: 2]
    ");
}

#[test]
fn json_syntax_error() {
    insta::assert_snapshot!(check("{\"tasks\": [{\"id\": \"T1\",}]}", "plan.json"), @"
    ------- stderr -------
    plan.json:1:24: trailing comma
    error: 1 error in `plan.json`
    [exit status: 2]
    ");
}

#[test]
fn wrong_value_type() {
    insta::assert_snapshot!(check("[[task]]\nid = \"T1\"\ntitle = 3\n", "plan.toml"), @"
    ------- stderr -------
    plan.toml:3:9: invalid type: integer `3`, expected a string
    error: 1 error in `plan.toml`
    [exit status: 2]
    ");
}

#[test]
fn misspelled_known_fields_are_errors_unknown_fields_are_kept() {
    let plan = "[[task]]\nid = \"T1\"\ndepnds_on = [\"T2\"]\nPriority = 1\nestimate = \"3d\"\n\n[[task]]\nid = \"T2\"\n";
    insta::assert_snapshot!(check(plan, "plan.toml"), @"
    ------- stderr -------
    plan.toml:3:1: unknown field `depnds_on` in `T1` (did you mean `depends_on`?)
    plan.toml:4:1: unknown field `Priority` in `T1` (did you mean `priority`?)
    error: 2 errors in `plan.toml`
    [exit status: 2]
    ");
}

#[test]
fn bad_id_characters() {
    let mut plan = String::new();
    for id in [
        "a b",
        "a/b",
        "..",
        "tâche",
        "x;rm -rf",
        "$(id)",
        "ok",
        &"a".repeat(65),
    ] {
        writeln!(plan, "[[task]]\nid = {id:?}\n").unwrap();
    }
    insta::assert_snapshot!(check(&plan, "plan.toml"), @"
    ------- stderr -------
    plan.toml:2:1: invalid id `a b`: a space is not allowed; ids become branch and folder names, so use only letters, digits, `_` and `-`
    plan.toml:5:1: invalid id `a/b`: `/` is not allowed; ids become branch and folder names, so use only letters, digits, `_` and `-`
    plan.toml:8:1: invalid id `..`: an id segment is empty (`..` or a leading or trailing `.`)
    plan.toml:11:1: invalid id `tâche`: `â` is not allowed; ids become branch and folder names, so use only letters, digits, `_` and `-`
    plan.toml:14:1: invalid id `x;rm -rf`: `;` is not allowed; ids become branch and folder names, so use only letters, digits, `_` and `-`
    plan.toml:17:1: invalid id `$(id)`: `$` is not allowed; ids become branch and folder names, so use only letters, digits, `_` and `-`
    plan.toml:23:1: invalid id `aaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaa`: a segment is 65 characters long; the limit is 64
    error: 7 errors in `plan.toml`
    [exit status: 2]
    ");
}

#[test]
fn duplicate_full_id() {
    let plan = "[[milestone]]\nid = \"M1\"\n[[milestone.task]]\nid = \"T1\"\n[[milestone.task]]\nid = \"M1.T1\"\n";
    insta::assert_snapshot!(check(plan, "plan.toml"), @"
    ------- stderr -------
    plan.toml:6:1: duplicate id `M1.T1`; first defined at 3:1
    error: 1 error in `plan.toml`
    [exit status: 2]
    ");
}

#[test]
fn unknown_dependency_with_a_suggestion() {
    let plan = r#"
[[milestone]]
id = "M1"
[[milestone.task]]
id = "Schema"
[[milestone]]
id = "M2"
[[milestone.task]]
id = "T1"
depends_on = ["Shema", "M1.Schema", "M1", "Nothing-like-it"]
"#;
    insta::assert_snapshot!(check(plan, "plan.toml"), @"
    ------- stderr -------
    plan.toml:10:15: `M2.T1` depends on unknown `Shema` (did you mean `M1.Schema`?)
    plan.toml:10:43: `M2.T1` depends on unknown `Nothing-like-it`
    error: 2 errors in `plan.toml`
    [exit status: 2]
    ");
}

#[test]
fn self_and_ancestor_dependencies() {
    let plan = r#"
[[milestone]]
id = "M1"
[[milestone.task]]
id = "T1"
depends_on = ["T1", "M1"]
[[milestone.task.subtask]]
id = "S1"
depends_on = ["M1.T1"]
"#;
    insta::assert_snapshot!(check(plan, "plan.toml"), @"
    ------- stderr -------
    plan.toml:6:15: `M1.T1` depends on itself
    plan.toml:6:21: `M1.T1` depends on `M1`, which contains it
    plan.toml:9:15: `M1.T1.S1` depends on `M1.T1`, which contains it
    error: 3 errors in `plan.toml`
    [exit status: 2]
    ");
}

#[test]
fn cycles_are_reported_as_their_full_path() {
    let plan = r#"
[[task]]
id = "A"
depends_on = ["B"]
[[task]]
id = "B"
depends_on = ["C"]
[[task]]
id = "C"
depends_on = ["A"]
[[task]]
id = "D"
[[task.subtask]]
id = "S1"
depends_on = ["S2"]
[[task.subtask]]
id = "S2"
depends_on = ["S1"]
"#;
    insta::assert_snapshot!(check(plan, "plan.toml"), @"
    ------- stderr -------
    plan.toml:4:1: dependency cycle: A -> B -> C -> A
    plan.toml:15:1: dependency cycle: D.S1 -> D.S2 -> D.S1
    error: 2 errors in `plan.toml`
    [exit status: 2]
    ");
}

#[test]
fn a_cycle_through_lifted_subtask_and_milestone_dependencies() {
    let plan = r#"
[[milestone]]
id = "M1"
[[milestone.task]]
id = "T1"
[[milestone.task.subtask]]
id = "S1"
depends_on = ["M2"]
[[milestone]]
id = "M2"
[[milestone.task]]
id = "T1"
depends_on = ["M1.T1"]
"#;
    insta::assert_snapshot!(check(plan, "plan.toml"), @"
    ------- stderr -------
    plan.toml:8:1: dependency cycle: M1.T1 -> M2 -> M2.T1 -> M1.T1
    error: 1 error in `plan.toml`
    [exit status: 2]
    ");
}

#[test]
fn a_full_id_must_extend_its_parent() {
    let plan = "[[milestone]]\nid = \"M1\"\n[[milestone.task]]\nid = \"M2.T1\"\n[[milestone.task]]\nid = \"M1.T2.X\"\n";
    insta::assert_snapshot!(check(plan, "plan.toml"), @"
    ------- stderr -------
    plan.toml:4:1: `M2.T1` is written in full but does not extend its parent's id `M1`
    plan.toml:6:1: `M1.T2.X` is written in full but does not extend its parent's id `M1`
    error: 2 errors in `plan.toml`
    [exit status: 2]
    ");
}

#[test]
fn levels_must_nest_in_order() {
    let plan = "[[phase]]\nid = \"P1\"\n[[phase.task]]\nid = \"T1\"\n\n[[task]]\nid = \"T9\"\n";
    insta::assert_snapshot!(check(plan, "plan.toml"), @"
    ------- stderr -------
    plan.toml:3:9: `P1` is a phase and cannot hold `task` (a phase holds milestones)
    plan.toml:6:3: the plan lists items at more than one level (`phase` and `task`)
    error: 2 errors in `plan.toml`
    [exit status: 2]
    ");
}

#[test]
fn the_phase_barrier_rejects_dependencies_on_later_phases() {
    let plan = r#"
[[phase]]
id = "P1"
[[phase.milestone]]
id = "M1"
[[phase.milestone.task]]
id = "T1"
depends_on = ["P2.M1.T1"]
[[phase]]
id = "P2"
[[phase.milestone]]
id = "M1"
[[phase.milestone.task]]
id = "T1"
"#;
    insta::assert_snapshot!(check(plan, "plan.toml"), @"
    ------- stderr -------
    plan.toml:8:1: `P1.M1.T1` (phase P1) depends on `P2.M1.T1` in the later phase P2, which `scheduling.phase_barrier` holds back until phase P1 is done
    error: 1 error in `plan.toml`
    [exit status: 2]
    ");
}

#[test]
fn resources_and_agents_must_be_declared_in_the_config() {
    let env = TestEnv::new();
    env.init_repo();
    env.write(".orchestrator.toml", "[resources]\ndb = 1\n");
    env.write(
        "plan.toml",
        "[[task]]\nid = \"T1\"\nresources = { db = 2, gpu = 1 }\nagent = \"robot\"\n",
    );
    insta::assert_snapshot!(env.run(["plan", "check"]), @"
    ------- stderr -------
    plan.toml:3:1: `T1` needs 2 of resource `db`, but the config has only 1
    plan.toml:3:1: `T1` uses resource `gpu`, which `[resources]` in the config does not declare
    plan.toml:4:1: `T1` picks agent `robot`, which is neither a built-in preset nor defined in `[agents]` in the config
    error: 3 errors in `plan.toml`
    [exit status: 2]
    ");
}

#[test]
fn issue_18_every_error_is_reported_in_one_pass() {
    let env = TestEnv::new();
    env.init_repo();
    env.write(".orchestrator.toml", "[resources]\ndb = 1\n");
    env.write(
        "plan.toml",
        "[[task]]\nid = \"a b\"\n[[task]]\nid = \"T2\"\nresources = { gpu = 1 }\n[[task]]\nid = \"T3\"\nagent = \"nosuch\"\n",
    );
    insta::assert_snapshot!(env.run(["plan", "check"]), @"
    ------- stderr -------
    plan.toml:2:1: invalid id `a b`: a space is not allowed; ids become branch and folder names, so use only letters, digits, `_` and `-`
    plan.toml:5:1: `T2` uses resource `gpu`, which `[resources]` in the config does not declare
    plan.toml:8:1: `T3` picks agent `nosuch`, which is neither a built-in preset nor defined in `[agents]` in the config
    error: 3 errors in `plan.toml`
    [exit status: 2]
    ");
}

#[test]
fn config_errors_name_file_line_and_column() {
    let env = TestEnv::new();
    env.init_repo();
    env.write(".orchestrator.toml", "[agent]\nmax_paralel = 2\n");
    env.write("plan.toml", "[[task]]\nid = \"T1\"\n");
    insta::assert_snapshot!(env.run(["plan", "check"]), @"
    ------- stderr -------
    error: .orchestrator.toml:2:1: unknown field `max_paralel`, expected one of `preset`, `command`, `prompt`, `final_message`, `exclude`, `unit`, `timeout`, `max_parallel`, `auto_commit`, `grace`, `log_limit`, `env`
    [exit status: 2]
    ");
}

#[test]
fn a_missing_plan_says_how_to_start() {
    let env = TestEnv::new();
    env.init_repo();
    insta::assert_snapshot!(env.run(["plan", "check"]), @"
    ------- stderr -------
    error: cannot read plan `plan.toml`
      caused by: No such file or directory (os error 2)
    hint: run `orch init` to write a starter plan, or pass `--plan FILE`
    [exit status: 2]
    ");
}

#[test]
fn empty_file() {
    insta::assert_snapshot!(check("", "plan.toml"), @"
    ------- stderr -------
    plan.toml: the plan has no tasks (the file is empty)
    error: 1 error in `plan.toml`
    [exit status: 2]
    ");
    insta::assert_snapshot!(check("  \n", "plan.json"), @"
    ------- stderr -------
    plan.json: the plan has no tasks (the file is empty)
    error: 1 error in `plan.json`
    [exit status: 2]
    ");
}

#[test]
fn binary_garbage() {
    let env = TestEnv::new();
    env.init_repo();
    let bytes: Vec<u8> = (0..4096u32)
        .map(|i| (i.wrapping_mul(2_654_435_761) >> 13) as u8)
        .collect();
    fs::write(env.repo().join("plan.bin"), bytes).unwrap();
    insta::assert_snapshot!(env.run(["plan", "check", "--plan", "plan.bin"]), @"
    ------- stderr -------
    plan.bin:1:2: the file is not valid UTF-8 (byte 1)
    error: 1 error in `plan.bin`
    [exit status: 2]
    ");
}

#[test]
fn a_json_plan_nested_too_deep_is_an_error_not_a_crash() {
    let text = format!("{}{}", "[".repeat(100_000), "]".repeat(100_000));
    insta::assert_snapshot!(check(&format!("{{\"tasks\": [{{\"id\": \"T1\", \"x\": {text}}}]}}"), "plan.json"), @"
    ------- stderr -------
    plan.json:1:154: recursion limit exceeded
    error: 1 error in `plan.json`
    [exit status: 2]
    ");
    let toml = format!("x = {}{}", "[".repeat(100_000), "]".repeat(100_000));
    let out = check(&toml, "plan.toml");
    assert!(out.ends_with("[exit status: 2]\n"), "{out}");
}

#[test]
fn a_ten_thousand_deep_dependency_chain() {
    let mut plan = String::from("{\"tasks\": [");
    for i in 0..10_000 {
        if i > 0 {
            plan.push(',');
        }
        if i == 0 {
            write!(plan, "{{\"id\": \"T{i}\"}}").unwrap();
        } else {
            write!(
                plan,
                "{{\"id\": \"T{i}\", \"depends_on\": [\"T{}\"]}}",
                i - 1
            )
            .unwrap();
        }
    }
    plan.push_str("]}");
    insta::assert_snapshot!(check(&plan, "plan.json"), @"plan.json: 10000 tasks, 0 subtasks, 9999 dependencies, 10000 dependency levels");
    let cyclic = plan.replacen(
        "{\"id\": \"T0\"}",
        "{\"id\": \"T0\", \"depends_on\": [\"T9999\"]}",
        1,
    );
    let out = check(&cyclic, "plan.json");
    assert!(
        out.contains("dependency cycle: T0 -> T9999 -> T9998"),
        "{}",
        &out[..200.min(out.len())]
    );
    assert!(out.contains("T1 -> T0\n"));
}

#[test]
fn a_fifty_megabyte_plan() {
    let mut plan = String::from("{\"title\": \"big\", \"tasks\": [");
    let description = "x".repeat(50 * 1024);
    for i in 0..1000 {
        if i > 0 {
            plan.push(',');
        }
        write!(
            plan,
            "{{\"id\": \"T{i}\", \"description\": \"{description}\"}}"
        )
        .unwrap();
    }
    plan.push_str("]}");
    assert!(plan.len() > 50_000_000);
    insta::assert_snapshot!(check(&plan, "plan.json"), @"plan.json: 1000 tasks, 0 subtasks, 0 dependencies, 1 dependency level");
    let broken = format!("{}\"", &plan[..plan.len() - 2]);
    let out = check(&broken, "plan.json");
    assert!(out.ends_with("[exit status: 2]\n"), "{out}");
}
