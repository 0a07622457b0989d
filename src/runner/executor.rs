//! Where an attempt runs: the seam between the supervisor and the engine
//! that runs the command (docs/scaling.md).
//!
//! Given an attempt (argv, environment, workspace, limits), an executor
//! produces the [`Spec`] the supervisor runs, and answers what became of an
//! attempt whose supervisor is gone ([`detached`]).
//! The supervisor stays the same for every executor: it runs `spec.argv` in
//! its own process group, with the timeout, the log and `exit.json`.
//!
//! | executor | what the supervisor runs | a detached attempt |
//! | --- | --- | --- |
//! | `local` | the agent itself | nothing: the agent dies with its group |
//! | `slurm` | `orch __job`, which runs `srun … -- <agent>` ([`super::slurm`]) | asked of `squeue`, `scontrol`, `sacct`; an orphan is cancelled |
//!
//! Two workspaces: a folder the command runs in (this machine's, or one on
//! a filesystem the nodes share), or the git transport: the job fetches a
//! ref from a remote into a scratch clone on the node, runs there, and for
//! an agent commits what it left and pushes the branch back. A Kubernetes
//! executor would be one more row: a Job per attempt with the git workspace.
//!
//! No executor knows about plans, tasks' statuses or merges.

use std::path::{Path, PathBuf};
use std::time::Duration;

use crate::config::ExecutorConfig;
use crate::git::cmd::DISCOVERY_VARS;
use crate::runner::confine::Grant;
use crate::runner::spec::{self, Confined, JobRecord, JobSpec, Publish, Spec};
use crate::runner::{node, slurm};

/// The hidden subcommand that submits and watches a cluster job.
pub const JOB_COMMAND: &str = "__job";

/// Which engine runs an attempt.
#[derive(Debug, Clone, PartialEq)]
pub enum Placement {
    /// On this machine, in the attempt's folder.
    Local,
    /// As a Slurm job.
    Slurm(Box<Cluster>),
}

/// A cluster job's settings and how it reaches the files.
#[derive(Debug, Clone, PartialEq)]
pub struct Cluster {
    /// `[executor]`, with the task's overrides.
    pub settings: ExecutorConfig,
    /// `None`: the attempt's folder is on a filesystem the nodes share, and
    /// the job runs in it. Else the job runs in a clone on the node.
    pub git: Option<GitTransport>,
}

/// The git workspace: what the job fetches, and what it pushes back.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct GitTransport {
    /// This machine's repository, which publishes `publish` before the job.
    pub repo: PathBuf,
    pub remote: String,
    /// Pushed to the remote before the job starts: `<local>:<remote ref>`.
    pub publish: String,
    /// The remote ref the job fetches and checks out.
    pub fetch: String,
    /// For an agent: where its work goes back.
    pub push_back: Option<PushBack>,
    /// For an agent handed a conflict: the target's head, which the job
    /// merges into the branch before the agent starts.
    pub merge: Option<TargetMerge>,
    /// The folder on the node where the job makes its clone.
    pub scratch: String,
}

/// The target a conflict hand-back's job merges into the branch: pushed
/// with the branch (so the job merges exactly the commit orch saw, not
/// whatever the remote's own target branch holds), fetched and merged by
/// the job, which leaves the conflicts in its clone for the agent, as
/// provisioning does here, and deletes the ref from the remote.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct TargetMerge {
    /// The target branch here (`main`): what is pushed, and the name the
    /// merge commit's message gives it.
    pub target: String,
    /// Where it is pushed on the remote (`refs/orch/target/<task>`).
    pub remote_ref: String,
}

/// What an agent's job pushes back.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct PushBack {
    pub branch: String,
    /// The message of the commit of what the agent left uncommitted after
    /// exiting 0; `None`: leave it (it stays in the scratch clone).
    pub commit_message: Option<String>,
    /// Where the agent's result file goes, as a one-file commit.
    pub result_ref: String,
}

/// One attempt, as the executor sees it.
#[derive(Debug, Clone)]
pub struct Attempt {
    /// The command, `{prompt_file}` and `{last_message_file}` not yet replaced.
    pub argv: Vec<String>,
    /// Where the agent writes its final message (`{last_message_file}`), in
    /// its worktree, if the attempt has one.
    pub last_message: Option<PathBuf>,
    pub env: Vec<(String, String)>,
    /// The folder it runs in: the task's worktree, or the merge worktree
    /// (on this machine, or on the filesystem the nodes share).
    pub dir: PathBuf,
    /// The prompt file in the run folder, if the attempt has one.
    pub prompt: Option<PathBuf>,
    /// Feed the prompt to the command's stdin.
    pub prompt_on_stdin: bool,
    pub log: PathBuf,
    pub log_limit: u64,
    pub timeout: Duration,
    pub grace: Duration,
    /// Confine the agent; `None`: it runs unconfined.
    pub sandbox: Option<Confined>,
    /// Watch `dir` while the agent runs if it tracks at least this many
    /// files (it was clean when the attempt started); only an agent
    /// running on this machine is watched.
    pub watch: Option<u64>,
}

/// Returns the spec the supervisor runs for `attempt`, whose run folder is
/// `run_dir`; `orch` is this binary (run again as `orch __job`).
pub fn spec(placement: &Placement, attempt: Attempt, run_dir: &Path, orch: &Path) -> Spec {
    let prompt_text = attempt
        .prompt
        .as_ref()
        .map(|p| p.display().to_string())
        .unwrap_or_default();
    let last_message = attempt
        .last_message
        .as_ref()
        .map(|p| p.display().to_string())
        .unwrap_or_default();
    let local = |argv: Vec<String>| -> Vec<String> {
        argv.iter()
            .map(|a| {
                a.replace("{prompt_file}", &prompt_text)
                    .replace("{last_message_file}", &last_message)
            })
            .collect()
    };
    let env_remove: Vec<String> = DISCOVERY_VARS.iter().map(|v| (*v).to_owned()).collect();
    let stdin = attempt.prompt.clone().filter(|_| attempt.prompt_on_stdin);
    let cluster = match placement {
        Placement::Local => {
            return Spec {
                argv: local(attempt.argv.clone()),
                cwd: attempt.dir.clone(),
                env: attempt.env,
                env_remove,
                stdin,
                log: attempt.log,
                log_limit: attempt.log_limit,
                timeout: attempt.timeout,
                grace: attempt.grace,
                job: None,
                sandbox: attempt.sandbox,
                watch: attempt.watch,
            };
        }
        Placement::Slurm(cluster) => cluster,
    };
    let cfg = &cluster.settings;
    let name = job_name(run_dir);
    let time_limit = Duration::from_secs(slurm::minutes(attempt.timeout) * 60);
    let supervisor_timeout = time_limit + cfg.queue_wait.0 + attempt.grace;
    let node_orch = cfg
        .orch
        .clone()
        .unwrap_or_else(|| orch.display().to_string());
    // A confined agent runs inside `orch __confine` on the node; `grant`
    // is what it may write there.
    let on_node = |grant: Option<&Grant>, agent: Vec<String>| match grant {
        Some(grant) => node::argv(&node_orch, grant, agent),
        None => agent,
    };
    let grant = attempt.sandbox.as_ref().map(|c| &c.grant);
    let orch_job = vec![
        orch.display().to_string(),
        JOB_COMMAND.to_owned(),
        run_dir.join(spec::SPEC).display().to_string(),
    ];
    let (job, cwd, env, stdin) = match &cluster.git {
        None => {
            let job = JobSpec {
                submit: slurm::submit_command(cfg, &name, &attempt.dir, attempt.timeout),
                name,
                argv: on_node(grant, local(attempt.argv.clone())),
                publish: None,
                confined: grant.is_some(),
            };
            (job, attempt.dir.clone(), attempt.env.clone(), stdin)
        }
        Some(git) => {
            let node_dir = format!("{}/orch-{name}", git.scratch.trim_end_matches('/'));
            let node_prompt = format!("{node_dir}/prompt.md");
            let mut env: Vec<(String, String)> = attempt
                .env
                .iter()
                .filter(|(k, _)| {
                    !matches!(
                        k.as_str(),
                        "ORCH_WORKTREE" | "ORCH_PROMPT_FILE" | "ORCH_RESULT_FILE"
                    )
                })
                .cloned()
                .collect();
            let set = |env: &mut Vec<(String, String)>, k: &str, v: String| {
                env.push((k.to_owned(), v));
            };
            set(&mut env, "ORCH_JOB_DIR", node_dir.clone());
            set(&mut env, "ORCH_JOB_REMOTE", git.remote.clone());
            set(&mut env, "ORCH_JOB_FETCH", git.fetch.clone());
            set(
                &mut env,
                "ORCH_JOB_STDIN",
                if attempt.prompt_on_stdin { "1" } else { "0" }.to_owned(),
            );
            if attempt.prompt.is_some() {
                set(&mut env, "ORCH_PROMPT_FILE", node_prompt.clone());
            }
            if let Some(merge) = &git.merge {
                set(&mut env, "ORCH_JOB_MERGE", merge.remote_ref.clone());
                set(&mut env, "ORCH_JOB_MERGE_NAME", merge.target.clone());
            }
            if let Some(back) = &git.push_back {
                set(&mut env, "ORCH_WORKTREE", format!("{node_dir}/repo"));
                set(
                    &mut env,
                    "ORCH_RESULT_FILE",
                    format!("{node_dir}/result.json"),
                );
                set(&mut env, "ORCH_JOB_BRANCH", back.branch.clone());
                set(&mut env, "ORCH_JOB_RESULT_REF", back.result_ref.clone());
                set(
                    &mut env,
                    "ORCH_JOB_COMMIT_MESSAGE",
                    back.commit_message.clone().unwrap_or_default(),
                );
            }
            let mut argv = vec![
                "sh".to_owned(),
                "-c".to_owned(),
                GIT_JOB_SCRIPT.to_owned(),
                "orch-job".to_owned(),
            ];
            let node_last_message = format!("{node_dir}/{}", spec::LAST_MESSAGE);
            let agent = attempt.argv.iter().map(|a| {
                a.replace("{prompt_file}", &node_prompt)
                    .replace("{last_message_file}", &node_last_message)
            });
            // On the node the agent may write its clone and the files
            // beside it (the report, the final message), nothing of the
            // submitting machine's.
            let node_grant = grant.map(|g| Grant {
                run_dir: PathBuf::from(&node_dir),
                ..g.clone()
            });
            argv.extend(on_node(node_grant.as_ref(), agent.collect()));
            let job = JobSpec {
                submit: slurm::submit_command(cfg, &name, Path::new(&git.scratch), attempt.timeout),
                name,
                argv,
                publish: Some(Publish {
                    repo: git.repo.clone(),
                    remote: git.remote.clone(),
                    refspec: git.publish.clone(),
                    also: git
                        .merge
                        .iter()
                        .map(|m| format!("+refs/heads/{}:{}", m.target, m.remote_ref))
                        .collect(),
                }),
                confined: grant.is_some(),
            };
            // The prompt always travels on stdin: the job writes it on the node.
            (job, run_dir.to_owned(), env, attempt.prompt.clone())
        }
    };
    Spec {
        argv: orch_job,
        cwd,
        env,
        env_remove,
        stdin,
        log: attempt.log,
        log_limit: attempt.log_limit,
        timeout: supervisor_timeout,
        grace: attempt.grace,
        job: Some(job),
        // The grant, for the record and for the commits the agent's git
        // hooks leave in a shared run folder; the supervisor runs `orch
        // __job` unconfined, and `orch __confine` confines the agent.
        sandbox: attempt.sandbox,
        // Its files change on a node, where no watch of this machine sees them.
        watch: None,
    }
}

/// Returns a job name unique to a run folder: `orch-<id>-<attempt>-<nonce>`.
fn job_name(run_dir: &Path) -> String {
    let mut parts = run_dir
        .iter()
        .rev()
        .take(2)
        .map(|p| p.to_string_lossy().into_owned())
        .collect::<Vec<_>>();
    parts.reverse();
    format!("orch-{}-{:08x}", parts.join("-"), fastrand::u32(..))
}

/// What the cluster says of an attempt whose supervisor is gone.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Detached {
    /// Its job ended; the record says how.
    Ended(JobRecord),
    /// Its job was still queued or running without its submitter, which
    /// delivers its output and exit (`srun`): it was cancelled.
    Orphaned(JobRecord),
    /// Nothing runs it (a local attempt, or a job the cluster does not know).
    Unknown,
}

/// Asks the attempt's executor about an attempt whose supervisor is gone,
/// cancelling its job if it is an orphan. Blocking (it runs `squeue`).
///
/// A Slurm job started by `srun` cannot finish its attempt without it, so
/// one still alive is cancelled; an executor whose jobs deliver their work
/// without their submitter (a Kubernetes Job) would answer that it runs,
/// and the coordinator would watch it (docs/scaling.md).
pub fn detached(spec: &Spec, recorded: Option<&JobRecord>) -> Detached {
    let Some(job) = &spec.job else {
        return Detached::Unknown;
    };
    match slurm::ask(job, recorded) {
        Some(found) if found.state.as_deref().is_some_and(slurm::is_alive) => {
            let _ = slurm::cancel(found.id.as_deref(), &job.name);
            Detached::Orphaned(found)
        }
        Some(found) if found.state.is_some() => Detached::Ended(found),
        _ => Detached::Unknown,
    }
}

/// Cancels an attempt's job, if it has one (the local executor has none:
/// stopping the supervisor's group is enough). Blocking.
pub fn cancel(spec: &Spec, recorded: Option<&JobRecord>) -> std::io::Result<()> {
    match &spec.job {
        Some(job) => slurm::cancel(recorded.and_then(|r| r.id.as_deref()), &job.name),
        None => Ok(()),
    }
}

/// The job script of the git workspace, run with `sh -c` on the node; the
/// command follows as its arguments. It fetches `ORCH_JOB_FETCH` from
/// `ORCH_JOB_REMOTE` into `ORCH_JOB_DIR/repo`; with `ORCH_JOB_MERGE` (a
/// conflict hand-back) fetches that ref as the branch `ORCH_JOB_MERGE_NAME`
/// (the target), deletes it from the remote, and merges it, leaving the
/// conflicts in place; runs the command there, and with `ORCH_JOB_BRANCH`
/// stages the conflicted files an agent that exited 0 left without markers
/// (as collection does on this machine), commits what it left (when
/// `ORCH_JOB_COMMIT_MESSAGE` is set and no conflict is left), pushes the
/// branch back, and the agent's report and final message (`result.json`,
/// `last-message.md` in `ORCH_JOB_DIR`), with the files still in conflict
/// (`unresolved`), as a commit of those files to `ORCH_JOB_RESULT_REF`,
/// and removes its clone. A clone with work it could not push, or
/// uncommitted changes, is kept, and the log says where. Exit 75 (transient)
/// when the remote cannot be reached.
pub const GIT_JOB_SCRIPT: &str = r#"
dir=$ORCH_JOB_DIR remote=$ORCH_JOB_REMOTE fetch=$ORCH_JOB_FETCH feed=$ORCH_JOB_STDIN
branch=${ORCH_JOB_BRANCH:-} result_ref=${ORCH_JOB_RESULT_REF:-} message=${ORCH_JOB_COMMIT_MESSAGE:-}
merge_ref=${ORCH_JOB_MERGE:-} target=${ORCH_JOB_MERGE_NAME:-}
unset ORCH_JOB_DIR ORCH_JOB_REMOTE ORCH_JOB_FETCH ORCH_JOB_STDIN ORCH_JOB_BRANCH ORCH_JOB_RESULT_REF ORCH_JOB_COMMIT_MESSAGE
unset ORCH_JOB_MERGE ORCH_JOB_MERGE_NAME
rm -rf "$dir" && mkdir -p "$dir" || { echo "orch: cannot make $dir on $(hostname)" >&2; exit 75; }
cat > "$dir/prompt.md"
git init -q "$dir/repo" && cd "$dir/repo" || exit 75
if ! git fetch -q "$remote" "$fetch"; then
  echo "orch: cannot fetch $fetch from $remote on $(hostname)" >&2
  exit 75
fi
if [ -n "$branch" ]; then
  git checkout -q -B "$branch" FETCH_HEAD || exit 75
else
  git checkout -q --detach FETCH_HEAD || exit 75
fi
if [ -n "$merge_ref" ] && [ -n "$branch" ]; then
  if ! git fetch -q "$remote" "+$merge_ref:refs/heads/$target"; then
    echo "orch: cannot fetch $merge_ref from $remote on $(hostname)" >&2
    exit 75
  fi
  git push -q "$remote" ":$merge_ref" 2> /dev/null
  id=
  { git var GIT_AUTHOR_IDENT && git var GIT_COMMITTER_IDENT; } > /dev/null 2>&1 ||
    id="-c user.name=orch -c user.email=orch@localhost"
  if ! git $id merge --no-edit -q "$target" > /dev/null 2>&1 &&
    [ -z "$(git diff --name-only --diff-filter=U)" ]; then
    echo "orch: cannot merge $target into $branch on $(hostname)" >&2
    exit 75
  fi
fi
if [ "$feed" = 1 ]; then "$@" < "$dir/prompt.md"; else "$@" < /dev/null; fi
status=$?
keep=
if [ -n "$branch" ]; then
  rm -f "$dir/unresolved"
  if [ -n "$merge_ref" ] && git rev-parse -q --verify MERGE_HEAD > /dev/null; then
    if [ $status -eq 0 ]; then
      git diff --name-only --diff-filter=U | while IFS= read -r f; do
        grep -q -E '^(<<<<<<<|>>>>>>>)( |$)' -- "$f" 2> /dev/null || git add -A -- "$f"
      done
    fi
    git diff --name-only --diff-filter=U > "$dir/unresolved"
    [ -s "$dir/unresolved" ] || rm -f "$dir/unresolved"
  fi
  if [ $status -eq 0 ] && [ -n "$message" ] && [ ! -f "$dir/unresolved" ] && [ -n "$(git status --porcelain)" ]; then
    git add -A && git commit -q -m "$message" || keep=1
  fi
  if ! git push -q "$remote" "HEAD:refs/heads/$branch"; then
    echo "orch: cannot push $branch to $remote" >&2
    keep=1
    [ $status -eq 0 ] && status=75
  fi
  files=
  for f in result.json last-message.md unresolved; do
    [ -f "$dir/$f" ] && files="$files $f"
  done
  if [ -n "$files" ]; then
    tree=$(for f in $files; do printf '100644 blob %s\t%s\n' "$(git hash-object -w "$dir/$f")" "$f"; done | git mktree) &&
      result=$(git commit-tree -m result "$tree") &&
      git push -q -f "$remote" "$result:$result_ref" || keep=1
  fi
  [ -n "$(git status --porcelain)" ] && keep=1
fi
if [ -n "$keep" ]; then
  echo "orch: the clone is kept on $(hostname) in $dir/repo" >&2
else
  cd / && rm -rf "$dir"
fi
exit $status
"#;

#[cfg(test)]
mod tests {
    use super::*;

    fn attempt() -> Attempt {
        Attempt {
            argv: vec!["agent".to_owned(), "{prompt_file}".to_owned()],
            last_message: Some(PathBuf::from("/w/T1/.orchestrator/last-message.md")),
            env: vec![("ORCH_WORKTREE".to_owned(), "/w/T1".to_owned())],
            dir: "/w/T1".into(),
            prompt: Some(PathBuf::from("/s/runs/T1/1/prompt.md")),
            prompt_on_stdin: false,
            log: PathBuf::from("/s/runs/T1/1/agent.log"),
            log_limit: 100,
            timeout: Duration::from_secs(90),
            grace: Duration::from_secs(5),
            sandbox: None,
            watch: Some(0),
        }
    }

    #[test]
    fn local_runs_the_agent_itself() {
        let spec = spec(
            &Placement::Local,
            attempt(),
            Path::new("/s/runs/T1/1"),
            Path::new("/bin/orch"),
        );
        assert_eq!(spec.argv, ["agent", "/s/runs/T1/1/prompt.md"]);
        assert_eq!(spec.cwd, PathBuf::from("/w/T1"));
        assert_eq!(spec.timeout, Duration::from_secs(90));
        assert_eq!(spec.job, None);
    }

    #[test]
    fn slurm_runs_orch_job_with_srun_and_a_longer_backstop() {
        let cfg = ExecutorConfig::default();
        let placement = Placement::Slurm(Box::new(Cluster {
            settings: cfg.clone(),
            git: None,
        }));
        let shared = spec(
            &placement,
            attempt(),
            Path::new("/s/runs/T1/1"),
            Path::new("/bin/orch"),
        );
        assert_eq!(
            shared.argv,
            ["/bin/orch", "__job", "/s/runs/T1/1/spec.json"]
        );
        let job = shared.job.unwrap();
        assert!(job.name.starts_with("orch-T1-1-"), "{}", job.name);
        assert!(job.submit.contains(&"--chdir=/w/T1".to_owned()));
        assert!(job.submit.contains(&"--time=2".to_owned()));
        assert_eq!(job.argv, ["agent", "/s/runs/T1/1/prompt.md"]);
        assert_eq!(
            shared.timeout,
            Duration::from_secs(120) + cfg.queue_wait.0 + Duration::from_secs(5)
        );

        let git = spec(
            &Placement::Slurm(Box::new(Cluster {
                settings: cfg.clone(),
                git: Some(GitTransport {
                    repo: "/r".into(),
                    remote: "ssh://host/r.git".to_owned(),
                    publish: "refs/heads/orch/T1:refs/heads/orch/T1".to_owned(),
                    fetch: "refs/heads/orch/T1".to_owned(),
                    push_back: Some(PushBack {
                        branch: "orch/T1".to_owned(),
                        commit_message: Some("m".to_owned()),
                        result_ref: "refs/orch/results/T1/1".to_owned(),
                    }),
                    merge: Some(TargetMerge {
                        target: "main".to_owned(),
                        remote_ref: "refs/orch/target/T1".to_owned(),
                    }),
                    scratch: "/scratch".to_owned(),
                }),
            })),
            attempt(),
            Path::new("/s/runs/T1/1"),
            Path::new("/bin/orch"),
        );
        let job = git.job.unwrap();
        let dir = format!("/scratch/orch-{}", job.name);
        assert_eq!(
            job.argv[3..],
            [
                "orch-job".to_owned(),
                "agent".to_owned(),
                format!("{dir}/prompt.md")
            ]
        );
        assert_eq!(git.stdin, Some(PathBuf::from("/s/runs/T1/1/prompt.md")));
        let var = |k: &str| {
            git.env
                .iter()
                .rev()
                .find(|(n, _)| n == k)
                .map(|(_, v)| v.clone())
        };
        assert_eq!(var("ORCH_WORKTREE"), Some(format!("{dir}/repo")));
        assert_eq!(var("ORCH_JOB_STDIN").as_deref(), Some("0"));
        assert_eq!(
            git.env.iter().filter(|(k, _)| k == "ORCH_WORKTREE").count(),
            1
        );
        assert_eq!(
            var("ORCH_JOB_MERGE").as_deref(),
            Some("refs/orch/target/T1")
        );
        assert_eq!(var("ORCH_JOB_MERGE_NAME").as_deref(), Some("main"));
        let publish = job.publish.unwrap();
        assert_eq!(publish.refspec, "refs/heads/orch/T1:refs/heads/orch/T1");
        assert_eq!(publish.also, ["+refs/heads/main:refs/orch/target/T1"]);
    }
}
