//! Problems in a `bgrun.toml`, reported all at once: each with file:line:col, the source snippet
//! and a hint, rendered by miette on a terminal and as JSON for programs.

use miette::{Diagnostic, NamedSource, SourceSpan};
use serde::Serialize;
use std::ops::Range;
use std::path::{Path, PathBuf};

#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Problem {
    pub span: Option<Range<usize>>,
    pub message: String,
    pub hint: Option<String>,
}

impl Problem {
    pub fn new(span: Option<Range<usize>>, message: String) -> Problem {
        Problem { span, message, hint: None }
    }
}

/// Every problem found in one file.
#[derive(Debug, Clone)]
pub struct Problems {
    pub file: PathBuf,
    pub source: String,
    pub problems: Vec<Problem>,
}

/// One problem as JSON: where it is and what to do.
#[derive(Debug, Serialize)]
pub struct ProblemView {
    pub file: String,
    pub line: Option<usize>,
    pub column: Option<usize>,
    pub message: String,
    pub hint: Option<String>,
}

impl Problems {
    pub fn new(file: &Path, source: String, problems: Vec<Problem>) -> Problems {
        Problems { file: file.to_path_buf(), source, problems }
    }

    /// 1-based line and column of a byte offset.
    fn position(&self, offset: usize) -> (usize, usize) {
        let before = &self.source[..offset.min(self.source.len())];
        let line = before.matches('\n').count() + 1;
        let column = before.rsplit('\n').next().map_or(0, |l| l.chars().count()) + 1;
        (line, column)
    }

    pub fn views(&self) -> Vec<ProblemView> {
        self.problems
            .iter()
            .map(|p| {
                let pos = p.span.as_ref().map(|s| self.position(s.start));
                ProblemView {
                    file: self.file.display().to_string(),
                    line: pos.map(|p| p.0),
                    column: pos.map(|p| p.1),
                    message: p.message.clone(),
                    hint: p.hint.clone(),
                }
            })
            .collect()
    }

    /// A miette report of every problem, for a person.
    pub fn report(&self) -> miette::Report {
        let src = NamedSource::new(self.file.display().to_string(), self.source.clone());
        let related = self
            .problems
            .iter()
            .map(|p| {
                let (line, col) = p.span.as_ref().map_or((0, 0), |s| self.position(s.start));
                FileProblem {
                    message: if line > 0 {
                        format!("{}:{line}:{col}: {}", self.file.display(), p.message)
                    } else {
                        format!("{}: {}", self.file.display(), p.message)
                    },
                    src: src.clone(),
                    span: p
                        .span
                        .clone()
                        .map(|s| SourceSpan::from(s.start..s.end.max(s.start + 1).min(self.source.len().max(1)))),
                    hint: p.hint.clone(),
                }
            })
            .collect();
        miette::Report::new(FileProblems {
            summary: format!(
                "{}: {} problem{}; nothing was changed",
                self.file.display(),
                self.problems.len(),
                if self.problems.len() == 1 { "" } else { "s" }
            ),
            related,
        })
    }
}

#[derive(Debug, thiserror::Error, Diagnostic)]
#[error("{message}")]
struct FileProblem {
    message: String,
    #[source_code]
    src: NamedSource<String>,
    #[label("here")]
    span: Option<SourceSpan>,
    #[help]
    hint: Option<String>,
}

#[derive(Debug, thiserror::Error, Diagnostic)]
#[error("{summary}")]
struct FileProblems {
    summary: String,
    #[related]
    related: Vec<FileProblem>,
}
