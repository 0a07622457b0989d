use crate::common::TestEnv;

const PLAN: &str = r#"
[[phase]]
id = "P1"
title = "Foundation"
[[phase.milestone]]
id = "M1"
title = "Storage \"v2\""
[[phase.milestone.task]]
id = "T1"
title = "Schema"
[[phase.milestone.task]]
id = "T2"
title = "Model"
depends_on = ["T1"]
[[phase]]
id = "P2"
[[phase.milestone]]
id = "M1"
[[phase.milestone.task]]
id = "T1"
title = "API"
depends_on = ["P1.M1", { id = "P1.M1.T2", required = false }]
"#;

#[test]
fn graph_as_dot() {
    let env = TestEnv::new();
    env.init_repo();
    env.write("plan.toml", PLAN);
    insta::assert_snapshot!(env.run(["plan", "graph"]), @r#"
    digraph plan {
      rankdir=LR;
      compound=true;
      node [shape=box];
      subgraph "cluster_P1" {
        label="P1: Foundation";
        subgraph "cluster_P1.M1" {
          label="P1.M1: Storage \"v2\"";
          "P1.M1.T1" [label="P1.M1.T1\nSchema\nlevel 1"];
          "P1.M1.T2" [label="P1.M1.T2\nModel\nlevel 2"];
        }
      }
      subgraph "cluster_P2" {
        label="P2";
        subgraph "cluster_P2.M1" {
          label="P2.M1";
          "P2.M1.T1" [label="P2.M1.T1\nAPI\nlevel 3"];
        }
      }
      "P1.M1.T1" -> "P1.M1.T2";
      "P1.M1.T2" -> "P2.M1.T1" [style=dashed];
      "P1.M1.T1" -> "P2.M1.T1" [ltail="cluster_P1.M1"];
    }
    "#);
}

#[test]
fn graph_as_mermaid() {
    let env = TestEnv::new();
    env.init_repo();
    env.write("plan.toml", PLAN);
    insta::assert_snapshot!(env.run(["plan", "graph", "--format", "mermaid"]), @r#"
    flowchart LR
      subgraph c0 ["P1: Foundation"]
        subgraph c1 ["P1.M1: Storage #quot;v2#quot;"]
          t0["P1.M1.T1<br/>Schema<br/>level 1"]
          t1["P1.M1.T2<br/>Model<br/>level 2"]
        end
      end
      subgraph c4 ["P2"]
        subgraph c5 ["P2.M1"]
          t2["P2.M1.T1<br/>API<br/>level 3"]
        end
      end
      t0 --> t1
      t1 -.-> t2
      c1 --> t2
    "#);
}

/// Issue 16: the graph ranks tasks by their dependency level (Kahn's), and
/// each label says the level.
#[test]
fn graph_ranks_tasks_by_level() {
    let env = TestEnv::new();
    env.init_repo();
    env.write(
        "plan.toml",
        "[[task]]\nid = \"a\"\n[[task]]\nid = \"b\"\n[[task]]\nid = \"c\"\ndepends_on = [\"a\", \"b\"]\n",
    );
    insta::assert_snapshot!(env.run(["plan", "graph"]), @r#"
    digraph plan {
      rankdir=LR;
      compound=true;
      node [shape=box];
      "a" [label="a\na\nlevel 1"];
      "b" [label="b\nb\nlevel 1"];
      "c" [label="c\nc\nlevel 2"];
      { rank=same; "a"; "b"; }
      "a" -> "c";
      "b" -> "c";
    }
    "#);
}
