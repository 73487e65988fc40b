//! Command-line plumbing shared by the two runners (`nalloc-bench` and
//! `nalloc-preload-bench`): what a command line asks for, comma lists of
//! names, and the common start of `main`.

/// What a command line asked for; `O` is the runner's options.
#[derive(Clone, Debug)]
pub enum Cli<O> {
    /// Run the benchmark.
    Run(O),
    /// Print workloads and allocators.
    List,
    /// Print usage.
    Help,
}

/// Splits `a,b, c` into names (empty items dropped).
pub fn split_list(v: &str) -> Vec<String> {
    v.split(',')
        .map(str::trim)
        .filter(|s| !s.is_empty())
        .map(str::to_owned)
        .collect()
}

/// Resolves names against `all` (keeping `all`'s order); empty selects everything.
pub fn select<T>(
    wanted: &[String],
    all: &'static [T],
    name: fn(&T) -> &'static str,
    what: &str,
) -> Result<Vec<&'static T>, String> {
    if let Some(bad) = wanted.iter().find(|w| !all.iter().any(|t| name(t) == *w)) {
        return Err(format!("unknown {what} `{bad}`"));
    }
    Ok(all
        .iter()
        .filter(|t| wanted.is_empty() || wanted.iter().any(|w| w == name(t)))
        .collect())
}

/// The start of a runner's `main`: the options to run with, or the exit
/// code after `--list` / `--help` (0) or a bad command line (2, with the
/// error and the valid choices on stderr).
pub fn options_or_exit<O>(
    parsed: Result<Cli<O>, String>,
    print_list: fn(),
    usage: fn() -> String,
    choices: fn() -> String,
) -> Result<O, i32> {
    match parsed {
        Ok(Cli::Run(o)) => Ok(o),
        Ok(Cli::List) => {
            print_list();
            Err(0)
        }
        Ok(Cli::Help) => {
            println!("{}", usage());
            Err(0)
        }
        Err(e) => {
            eprintln!("error: {e}\n\n{}\n\nrun with --help for all options", choices());
            Err(2)
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    static NAMES: [&str; 3] = ["a", "b", "c"];

    #[test]
    fn lists_and_selection() {
        assert_eq!(split_list(" a,,b ,"), ["a", "b"]);
        let all = select(&[], &NAMES, |n| n, "thing").unwrap();
        assert_eq!(all.len(), 3);
        let some = select(&["c".into(), "a".into()], &NAMES, |n| n, "thing").unwrap();
        assert_eq!(some, [&"a", &"c"]);
        assert_eq!(
            select(&["x".into()], &NAMES, |n| n, "thing").unwrap_err(),
            "unknown thing `x`"
        );
    }
}
