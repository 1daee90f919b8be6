//! The command line, parsed by hand (six flags do not need clap): getopt-style, as tini's
//! `getopt(argc, argv, "+hvsge:p:")` is. Flags may be clustered (`-sg`), option values may
//! be attached (`-e143`) or separate (`-e 143`), and parsing stops at `--` or at the first
//! argument that is not a flag, so `hako-init sh -c 'ls -l'` never reads `-c` as ours.

use std::ffi::OsString;
use std::os::unix::ffi::OsStrExt;

use crate::signals;

/// What the user asked for.
#[derive(Debug, Default, PartialEq, Eq)]
pub struct Options {
    /// `-s` (or `TINI_SUBREAPER` set): register as a child subreaper when not PID 1.
    pub subreaper: bool,
    /// `-g` (or `TINI_KILL_PROCESS_GROUP` set): forward signals to the child's process group.
    pub kill_group: bool,
    /// `-e CODE`: exit codes of the child that hako-init reports as 0.
    pub remap_to_zero: Vec<u8>,
    /// `-p SIGNAL`: the signal hako-init gets when its parent dies.
    pub parent_death_signal: Option<i32>,
    /// `-v`, repeatable.
    pub verbosity: u8,
    /// The program and its arguments.
    pub command: Vec<OsString>,
}

/// What `main` should do.
#[derive(Debug, PartialEq, Eq)]
pub enum Action {
    /// Supervise a child.
    Run(Options),
    /// `-h` / `--help`.
    Help,
    /// `--version`.
    Version,
}

/// The usage text, printed for `-h` and after a usage error.
pub const USAGE: &str = "\
usage: hako-init [-s] [-g] [-e CODE]... [-p SIGNAL] [-v]... [--] PROGRAM [ARGS...]

Runs PROGRAM as its child, forwards signals to it, reaps zombies, and exits with its status.

  -s          register as a child subreaper when not PID 1 (also: TINI_SUBREAPER=1)
  -g          send forwarded signals to the child's whole process group
              (also: TINI_KILL_PROCESS_GROUP=1)
  -e CODE     report exit code CODE of the child as 0 (repeatable)
  -p SIGNAL   signal to receive when the parent dies (e.g. SIGKILL, TERM, 15)
  -v          more messages on stderr (repeatable)
  -h, --help  this text
  --version   the version
";

/// Parse `args` (without argv[0]); `env` answers whether a variable is set.
pub fn parse(
    args: impl IntoIterator<Item = OsString>,
    env: impl Fn(&str) -> bool,
) -> Result<Action, String> {
    let mut opts = Options {
        subreaper: env("TINI_SUBREAPER"),
        kill_group: env("TINI_KILL_PROCESS_GROUP"),
        ..Options::default()
    };
    let mut args = args.into_iter();
    while let Some(arg) = args.next() {
        let bytes = arg.as_bytes();
        match bytes {
            b"--" => break,
            b"--help" => return Ok(Action::Help),
            b"--version" => return Ok(Action::Version),
            [b'-', b'-', ..] => {
                return Err(format!("unknown option {}", arg.to_string_lossy()));
            }
            [b'-', flags @ ..] if !flags.is_empty() => {
                let mut i = 0;
                while i < flags.len() {
                    let flag = flags[i];
                    i += 1;
                    match flag {
                        b'h' => return Ok(Action::Help),
                        b's' => opts.subreaper = true,
                        b'g' => opts.kill_group = true,
                        b'v' => opts.verbosity = opts.verbosity.saturating_add(1),
                        b'e' | b'p' => {
                            // The value is the rest of this word, or the next word.
                            let value = if i < flags.len() {
                                let rest = String::from_utf8_lossy(&flags[i..]).into_owned();
                                i = flags.len();
                                rest
                            } else {
                                args.next()
                                    .ok_or_else(|| {
                                        format!("option -{} needs a value", char::from(flag))
                                    })?
                                    .to_string_lossy()
                                    .into_owned()
                            };
                            if flag == b'e' {
                                opts.remap_to_zero.push(parse_code(&value)?);
                            } else {
                                opts.parent_death_signal = Some(
                                    signals::parse(&value)
                                        .ok_or_else(|| format!("unknown signal {value:?}"))?,
                                );
                            }
                        }
                        other => {
                            return Err(format!("unknown option -{}", char::from(other)));
                        }
                    }
                }
            }
            _ => {
                opts.command.push(arg);
                break;
            }
        }
    }
    opts.command.extend(args);
    if opts.command.is_empty() {
        return Err("no program to run".into());
    }
    Ok(Action::Run(opts))
}

fn parse_code(value: &str) -> Result<u8, String> {
    value
        .trim()
        .parse::<u8>()
        .map_err(|_| format!("exit code {value:?} is not a number from 0 to 255"))
}

#[cfg(test)]
mod tests {
    use super::*;

    fn run(args: &[&str]) -> Result<Action, String> {
        parse(args.iter().map(OsString::from), |_| false)
    }

    fn opts(args: &[&str]) -> Options {
        match run(args) {
            Ok(Action::Run(o)) => o,
            other => panic!("{args:?}: {other:?}"),
        }
    }

    #[test]
    fn flags_clusters_and_values() {
        let o = opts(&[
            "-sg", "-e143", "-e", "2", "-p", "SIGKILL", "-vv", "sh", "-c", "x",
        ]);
        assert!(o.subreaper && o.kill_group);
        assert_eq!(o.remap_to_zero, vec![143, 2]);
        assert_eq!(o.parent_death_signal, Some(9));
        assert_eq!(o.verbosity, 2);
        assert_eq!(o.command, ["sh", "-c", "x"]);
    }

    #[test]
    fn stops_at_first_program_word_and_at_double_dash() {
        assert_eq!(opts(&["ls", "-s"]).command, ["ls", "-s"]);
        let o = opts(&["-g", "--", "-weird", "-s"]);
        assert!(o.kill_group && !o.subreaper);
        assert_eq!(o.command, ["-weird", "-s"]);
        // A lone "-" is a program name, as for getopt.
        assert_eq!(opts(&["-"]).command, ["-"]);
    }

    #[test]
    fn help_version_and_errors() {
        assert_eq!(run(&["-h"]), Ok(Action::Help));
        assert_eq!(run(&["--help", "x"]), Ok(Action::Help));
        assert_eq!(run(&["--version"]), Ok(Action::Version));
        assert!(run(&[]).is_err());
        assert!(run(&["-s"]).is_err());
        assert!(run(&["-x", "sh"]).is_err());
        assert!(run(&["--nope", "sh"]).is_err());
        assert!(run(&["-e"]).is_err());
        assert!(run(&["-e", "256", "sh"]).is_err());
        assert!(run(&["-p", "SIGNOPE", "sh"]).is_err());
    }

    #[test]
    fn environment_switches() {
        let got = parse(["true".into()], |k| k == "TINI_SUBREAPER").unwrap();
        let Action::Run(o) = got else { panic!() };
        assert!(o.subreaper && !o.kill_group);
    }
}
