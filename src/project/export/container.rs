//! The image and arguments of a `docker run` / `podman run` command, for jobs that run a
//! container: compose and Kubernetes run the image themselves.

/// Options of `run` that take no value; any other option takes the next word unless written
/// `--opt=value`.
const FLAGS: &[&str] = &[
    "--rm",
    "-d",
    "--detach",
    "-i",
    "--interactive",
    "-t",
    "--tty",
    "--init",
    "--privileged",
    "--read-only",
    "-P",
    "--publish-all",
    "--no-healthcheck",
    "--oom-kill-disable",
    "-q",
    "--quiet",
];

/// Options that say how bgrun runs the container, not what runs in it: nothing to carry over.
const HOUSEKEEPING: &[&str] =
    &["--rm", "-d", "--detach", "-i", "--interactive", "-t", "--tty", "--name", "-q", "--quiet"];

#[derive(Debug, PartialEq, Eq)]
pub struct Run {
    pub image: String,
    pub args: Vec<String>,
    /// The options that are not carried over, as written.
    pub options: Vec<String>,
}

/// The run command among `words` (after `sudo`, in a shell line), read as the engine reads it.
pub fn parse_run(words: &[String]) -> Option<Run> {
    let at = crate::spec::engine_run_at(words)?;
    let mut rest = words[at + 2..].iter();
    let mut options = Vec::new();
    while let Some(word) = rest.next() {
        if !word.starts_with('-') || word == "-" {
            let args = rest.cloned().collect();
            return Some(Run { image: word.clone(), args, options });
        }
        let (name, inline) = match word.split_once('=') {
            Some((name, _)) => (name, true),
            None => (word.as_str(), false),
        };
        // `-it`, `-dit`: single-letter flags run together.
        let cluster = !word.starts_with("--") && word.len() > 2 && word[1..].chars().all(|c| "dit".contains(c));
        let flag = FLAGS.contains(&name) || cluster;
        let mut written = word.clone();
        if !flag && !inline {
            let value = rest.next()?;
            written = format!("{word} {value}");
        }
        if !(HOUSEKEEPING.contains(&name) || cluster) {
            options.push(written);
        }
    }
    None
}

#[cfg(test)]
mod tests {
    use super::*;

    fn words(line: &str) -> Vec<String> {
        line.split_whitespace().map(String::from).collect()
    }

    #[test]
    fn the_image_follows_the_options() {
        let run = parse_run(&words("sudo docker run --rm -it --name pg -p 5432:5432 -e A=b postgres:16 -c fsync=off"))
            .unwrap();
        assert_eq!(run.image, "postgres:16");
        assert_eq!(run.args, ["-c", "fsync=off"]);
        assert_eq!(run.options, ["-p 5432:5432", "-e A=b"]);
        let run = parse_run(&words("podman run --network=host -d redis")).unwrap();
        assert_eq!((run.image.as_str(), run.options.as_slice()), ("redis", ["--network=host".to_string()].as_slice()));
        assert_eq!(parse_run(&words("docker run --rm -p")), None, "no image");
        assert_eq!(parse_run(&words("docker ps")), None);
    }
}
