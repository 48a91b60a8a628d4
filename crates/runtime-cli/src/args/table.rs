//! The table of berth-runtime's subcommands and flags, and the help text
//! made from it.

/// One flag of a subcommand's table.
pub(super) struct Flag {
    pub(super) long: &'static str,
    pub(super) short: Option<char>,
    /// Takes a value (else a boolean).
    pub(super) value: bool,
    help: &'static str,
}

const fn flag(long: &'static str, short: Option<char>, value: bool, help: &'static str) -> Flag {
    Flag {
        long,
        short,
        value,
        help,
    }
}

#[rustfmt::skip]
pub(super) const GLOBAL: &[Flag] = &[
    flag("root", None, true, "state directory [default: /run/berth-runtime for root, $XDG_RUNTIME_DIR/berth-runtime for others]"),
    flag("log", None, true, "write logs to this file instead of stderr"),
    flag("log-format", None, true, "log format: text or json [default: text]"),
    flag("debug", None, false, "log debug messages"),
    flag("systemd-cgroup", None, false, "use systemd to manage cgroups (not supported yet)"),
    flag("help", Some('h'), false, "print help"),
    flag("version", Some('v'), false, "print the version"),
];

#[rustfmt::skip]
const CREATE: &[Flag] = &[
    flag("bundle", Some('b'), true, "path to the bundle directory [default: .]"),
    flag("pid-file", None, true, "file to write the container's init pid to"),
    flag("console-socket", None, true, "unix socket that receives the pty master"),
    flag("no-pivot", None, false, "use MS_MOVE and chroot instead of pivot_root"),
    flag("no-new-keyring", None, false, "do not create a new session keyring"),
    flag("preserve-fds", None, true, "pass this many descriptors above stdio to the container"),
];

#[rustfmt::skip]
const RUN_EXTRA: &[Flag] = &[
    flag("detach", Some('d'), false, "return once started"),
    flag("keep", None, false, "keep the container after it exits"),
];

#[rustfmt::skip]
const EXEC: &[Flag] = &[
    flag("process", Some('p'), true, "a process.json to run instead of the command line"),
    flag("tty", Some('t'), false, "allocate a pseudo-terminal"),
    flag("console-socket", None, true, "unix socket that receives the pty master"),
    flag("cwd", None, true, "working directory in the container"),
    flag("env", Some('e'), true, "set an environment variable (KEY=VALUE), repeatable"),
    flag("user", Some('u'), true, "user as UID[:GID]"),
    flag("additional-gids", Some('g'), true, "an additional group id, repeatable"),
    flag("cap", Some('c'), true, "add a capability, repeatable"),
    flag("no-new-privs", None, false, "set no_new_privs"),
    flag("process-label", None, true, "SELinux label (SELinux is not supported on this host)"),
    flag("apparmor", None, true, "AppArmor profile (AppArmor is not supported on this host)"),
    flag("detach", Some('d'), false, "return once the process runs"),
    flag("pid-file", None, true, "file to write the process pid to"),
    flag("preserve-fds", None, true, "pass this many descriptors above stdio to the process"),
];

#[rustfmt::skip]
const UPDATE: &[Flag] = &[
    flag("resources", Some('r'), true, "a JSON file with a linux.resources section (- for stdin)"),
    flag("memory", None, true, "memory limit in bytes (suffixes k, m, g allowed)"),
    flag("memory-swap", None, true, "memory plus swap limit (-1 for unlimited)"),
    flag("memory-reservation", None, true, "memory soft limit"),
    flag("cpu-shares", None, true, "CPU shares (relative weight)"),
    flag("cpu-quota", None, true, "CFS quota in microseconds per period (-1 for none)"),
    flag("cpu-period", None, true, "CFS period in microseconds"),
    flag("cpuset-cpus", None, true, "CPUs to run on (0-3, 0,1)"),
    flag("cpuset-mems", None, true, "memory nodes to use"),
    flag("pids-limit", None, true, "maximum number of processes (0 or -1 for unlimited)"),
    flag("blkio-weight", None, true, "block I/O weight (10-1000)"),
];

#[rustfmt::skip]
const FORMAT: &[Flag] = &[flag("format", Some('f'), true, "output format: table or json [default: table]")];
#[rustfmt::skip]
const LIST: &[Flag] = &[
    flag("format", Some('f'), true, "output format: table or json [default: table]"),
    flag("quiet", Some('q'), false, "print only ids"),
];
#[rustfmt::skip]
const KILL: &[Flag] = &[flag("all", Some('a'), false, "send to every process in the container's cgroup")];
#[rustfmt::skip]
const DELETE: &[Flag] = &[flag("force", Some('f'), false, "kill a running container first")];
#[rustfmt::skip]
const EVENTS: &[Flag] = &[
    flag("stats", None, false, "print one statistics event and exit"),
    flag("interval", None, true, "statistics interval (5s, 250ms, 1m) [default: 5s]"),
];
#[rustfmt::skip]
const SPEC: &[Flag] = &[
    flag("bundle", Some('b'), true, "where to write config.json [default: .]"),
    flag("rootless", None, false, "a spec for an unprivileged user"),
];
const NONE: &[Flag] = &[];

/// A subcommand: its name, flag tables, positional usage and summary.
pub(super) struct Sub {
    pub(super) name: &'static str,
    pub(super) flags: &'static [&'static [Flag]],
    pub(super) usage: &'static str,
    about: &'static str,
    /// After this many positionals every further word is positional.
    pub(super) trailing_after: Option<usize>,
}

const fn sub(
    name: &'static str,
    flags: &'static [&'static [Flag]],
    usage: &'static str,
    about: &'static str,
    trailing_after: Option<usize>,
) -> Sub {
    Sub {
        name,
        flags,
        usage,
        about,
        trailing_after,
    }
}

#[rustfmt::skip]
pub(super) const SUBS: &[Sub] = &[
    sub("create", &[CREATE], "ID", "create a container (its program waits for `start`)", None),
    sub("start", &[NONE], "ID", "start a created container", None),
    sub("run", &[CREATE, RUN_EXTRA], "ID", "create and start a container, and wait for it unless --detach", None),
    sub("state", &[NONE], "ID", "print a container's OCI state", None),
    sub("list", &[LIST], "", "list containers (also `ls`)", None),
    sub("kill", &[KILL], "ID [SIGNAL]", "send a signal to a container (default SIGTERM)", None),
    sub("delete", &[DELETE], "ID", "delete a container", None),
    sub("exec", &[EXEC], "ID [COMMAND [ARG...]]", "run a process inside a running container", Some(1)),
    sub("pause", &[NONE], "ID", "freeze every process of a container", None),
    sub("resume", &[NONE], "ID", "thaw a paused container", None),
    sub("ps", &[FORMAT], "ID [PS_ARGS...]", "list the processes of a container", Some(1)),
    sub("update", &[UPDATE], "ID", "change the resource limits of a container", None),
    sub("events", &[EVENTS], "ID", "print resource statistics and OOM events as JSON lines", None),
    sub("spec", &[SPEC], "", "write a default config.json", None),
    sub("features", &[NONE], "", "print the features document", None),
];

fn flag_lines(out: &mut String, tables: &[&[Flag]]) {
    for f in tables.iter().flat_map(|t| t.iter()) {
        let short = f.short.map(|c| format!("-{c}, ")).unwrap_or_default();
        let value = if f.value { " VALUE" } else { "" };
        let left = format!("  {short}--{}{value}", f.long);
        out.push_str(&format!("{left:<32} {}\n", f.help));
    }
}

/// `berth-runtime --help`.
pub fn global_help() -> String {
    let mut out = String::from(
        "berth's OCI runtime (runc-compatible command line)\n\n\
         Usage: berth-runtime [GLOBAL FLAGS] COMMAND [FLAGS] [ARGS]\n\nCommands:\n",
    );
    for s in SUBS {
        out.push_str(&format!("  {:<10} {}\n", s.name, s.about));
    }
    out.push_str("\nGlobal flags:\n");
    flag_lines(&mut out, &[GLOBAL]);
    out
}

pub(super) fn sub_help(sub: &Sub) -> String {
    let mut out = format!(
        "berth-runtime {}: {}\n\nUsage: berth-runtime {} [FLAGS] {}\n\nFlags:\n",
        sub.name, sub.about, sub.name, sub.usage
    );
    flag_lines(&mut out, sub.flags);
    out.push_str("  -h, --help                       print help\n");
    out
}
