//! Reading a package from disk or from a request body into one JSON document, remembering which
//! file each part came from so that every problem can name its file and path.
//!
//! A package is either one YAML or JSON document, or a directory holding `package.yaml` (or
//! `.yml`, `.json`) and, optionally, the folders `roles/`, `operations/`, `playbooks/` and `tests/`, whose
//! files each hold one item or a list of items. Files are read in name order; symbolic links
//! are refused so that a package cannot read outside its own directory.

mod flow_depth;

use std::fs;
use std::path::{Path, PathBuf};

use serde_json::Value;

use super::Problem;

/// The most a package may weigh, all files together.
pub const MAX_PACKAGE_BYTES: u64 = 8 * 1024 * 1024;
/// The most files a package directory may hold.
const MAX_PACKAGE_FILES: usize = 2_000;
const SECTIONS: [&str; 4] = ["roles", "operations", "playbooks", "tests"];

/// The document a package was read into, with where each part came from.
#[derive(Debug, Clone)]
pub struct LoadedPackage {
    pub document: Value,
    pub sources: SourceMap,
}

impl LoadedPackage {
    /// A package that arrived as a JSON value (a request body), named `file` in problems.
    pub fn from_value(file: &str, document: Value) -> LoadedPackage {
        LoadedPackage { document, sources: SourceMap::single(file) }
    }
}

/// Maps JSON pointers in the merged document back to files and pointers within them.
#[derive(Debug, Clone, Default)]
pub struct SourceMap {
    // (prefix in the merged document, file, prefix in that file); the longest prefix wins.
    entries: Vec<(String, String, String)>,
}

impl SourceMap {
    fn single(file: &str) -> SourceMap {
        SourceMap { entries: vec![(String::new(), file.to_owned(), String::new())] }
    }

    fn add(&mut self, document_prefix: String, file: String, file_prefix: String) {
        self.entries.push((document_prefix, file, file_prefix));
    }

    /// The file and the pointer within it of a pointer into the merged document.
    pub fn locate(&self, pointer: &str) -> (String, String) {
        let best = self
            .entries
            .iter()
            .filter(|(prefix, _, _)| {
                pointer == prefix
                    || (pointer.starts_with(prefix.as_str()) && pointer[prefix.len()..].starts_with('/'))
                    || prefix.is_empty()
            })
            .max_by_key(|(prefix, _, _)| prefix.len());
        match best {
            Some((prefix, file, file_prefix)) => (file.clone(), format!("{file_prefix}{}", &pointer[prefix.len()..])),
            None => ("<package>".to_owned(), pointer.to_owned()),
        }
    }
}

/// The syntax of a package document.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Format {
    Yaml,
    Json,
}

impl Format {
    fn of(path: &Path) -> Option<Format> {
        match path.extension().and_then(|extension| extension.to_str()) {
            Some("yaml" | "yml") => Some(Format::Yaml),
            Some("json") => Some(Format::Json),
            _ => None,
        }
    }
}

/// Parses one package document (a request body, say) named `file` in problems.
pub fn load_document(file: &str, text: &str, format: Format) -> Result<LoadedPackage, Vec<Problem>> {
    if text.len() as u64 > MAX_PACKAGE_BYTES {
        return Err(vec![Problem::file(file, format!("is larger than {MAX_PACKAGE_BYTES} bytes"))]);
    }
    let document = parse(file, text, format).map_err(|problem| vec![problem])?;
    Ok(LoadedPackage { document, sources: SourceMap::single(file) })
}

/// Reads a package from a file or a directory.
pub fn load_path(path: &Path) -> Result<LoadedPackage, Vec<Problem>> {
    let shown = path.display().to_string();
    let metadata =
        fs::symlink_metadata(path).map_err(|error| vec![Problem::file(&shown, format!("cannot be read: {error}"))])?;
    if metadata.is_dir() {
        return load_directory(path);
    }
    let format = Format::of(path).ok_or_else(|| {
        vec![Problem::file(&shown, "is not a package: expected a .yaml, .yml or .json file or a directory")]
    })?;
    let text = read_file(path, &shown, &mut 0)?;
    load_document(&shown, &text, format)
}

fn load_directory(directory: &Path) -> Result<LoadedPackage, Vec<Problem>> {
    let mut budget = 0u64;
    let mut problems = Vec::new();
    let root = ["package.yaml", "package.yml", "package.json"]
        .iter()
        .map(|name| directory.join(name))
        .find(|candidate| candidate.exists());
    let Some(root) = root else {
        return Err(vec![Problem::file(
            &directory.display().to_string(),
            "is not a package directory: it has no package.yaml, package.yml or package.json",
        )]);
    };
    let root_name = relative(directory, &root);
    let text = read_file(&root, &root_name, &mut budget)?;
    let mut document =
        parse(&root_name, &text, Format::of(&root).unwrap_or(Format::Yaml)).map_err(|problem| vec![problem])?;
    let mut sources = SourceMap::single(&root_name);
    let Some(object) = document.as_object_mut() else {
        return Err(vec![Problem::file(&root_name, "must be a mapping with `package` and `version`")]);
    };
    for section in SECTIONS {
        let folder = directory.join(section);
        match fs::symlink_metadata(&folder) {
            Err(_) => continue,
            Ok(metadata) if metadata.file_type().is_symlink() => {
                let shown = relative(directory, &folder);
                problems.push(Problem::file(&shown, "is a symbolic link; a package may only hold its own files"));
                continue;
            }
            Ok(metadata) if !metadata.is_dir() => continue,
            Ok(_) => {}
        }
        let files = match list_files(&folder, directory) {
            Ok(files) => files,
            Err(problem) => {
                problems.push(problem);
                continue;
            }
        };
        if files.len() > MAX_PACKAGE_FILES {
            problems.push(Problem::file(
                &relative(directory, &folder),
                format!("holds more than {MAX_PACKAGE_FILES} files"),
            ));
            continue;
        }
        let items = object.entry(section).or_insert_with(|| Value::Array(Vec::new()));
        let Some(items) = items.as_array_mut() else {
            problems.push(Problem::at(&root_name, &format!("/{section}"), "must be a list"));
            continue;
        };
        for file in files {
            let name = relative(directory, &file);
            let text = match read_file(&file, &name, &mut budget) {
                Ok(text) => text,
                Err(mut errors) => {
                    problems.append(&mut errors);
                    continue;
                }
            };
            let value = match parse(&name, &text, Format::of(&file).unwrap_or(Format::Yaml)) {
                Ok(value) => value,
                Err(problem) => {
                    problems.push(problem);
                    continue;
                }
            };
            match value {
                Value::Array(list) => {
                    for (index, item) in list.into_iter().enumerate() {
                        sources.add(format!("/{section}/{}", items.len()), name.clone(), format!("/{index}"));
                        items.push(item);
                    }
                }
                item => {
                    sources.add(format!("/{section}/{}", items.len()), name.clone(), String::new());
                    items.push(item);
                }
            }
        }
    }
    if problems.is_empty() { Ok(LoadedPackage { document, sources }) } else { Err(problems) }
}

fn list_files(folder: &Path, directory: &Path) -> Result<Vec<PathBuf>, Problem> {
    let shown = relative(directory, folder);
    let entries = fs::read_dir(folder).map_err(|error| Problem::file(&shown, format!("cannot be read: {error}")))?;
    let mut files = Vec::new();
    for entry in entries {
        let entry = entry.map_err(|error| Problem::file(&shown, format!("cannot be read: {error}")))?;
        let path = entry.path();
        if Format::of(&path).is_some() {
            files.push(path);
        }
    }
    files.sort();
    Ok(files)
}

fn read_file(path: &Path, shown: &str, budget: &mut u64) -> Result<String, Vec<Problem>> {
    let metadata =
        fs::symlink_metadata(path).map_err(|error| vec![Problem::file(shown, format!("cannot be read: {error}"))])?;
    if metadata.file_type().is_symlink() {
        return Err(vec![Problem::file(shown, "is a symbolic link; a package may only hold its own files")]);
    }
    if !metadata.is_file() {
        return Err(vec![Problem::file(shown, "is not a regular file")]);
    }
    *budget += metadata.len();
    if *budget > MAX_PACKAGE_BYTES {
        return Err(vec![Problem::file(shown, format!("makes the package larger than {MAX_PACKAGE_BYTES} bytes"))]);
    }
    fs::read_to_string(path)
        .map_err(|error| vec![Problem::file(shown, format!("cannot be read as UTF-8 text: {error}"))])
}

fn parse(file: &str, text: &str, format: Format) -> Result<Value, Problem> {
    match format {
        Format::Json => serde_json::from_str(text).map_err(|error| {
            Problem::file(
                file,
                format!("is not valid JSON (line {}, column {}): {error}", error.line(), error.column()),
            )
        }),
        Format::Yaml => {
            if let Some((line, column)) = flow_depth::too_deep(text) {
                return Err(Problem::file(
                    file,
                    format!(
                        "is not valid YAML (line {line}, column {column}): `[…]` and `{{…}}` are nested more than \
                         {} levels deep",
                        flow_depth::MAX_FLOW_DEPTH
                    ),
                ));
            }
            serde_yaml_ng::from_str::<Value>(text).map_err(|error| {
                let place = error
                    .location()
                    .map(|location| format!(" (line {}, column {})", location.line(), location.column()))
                    .unwrap_or_default();
                Problem::file(file, format!("is not valid YAML{place}: {error}"))
            })
        }
    }
}

fn relative(directory: &Path, path: &Path) -> String {
    let name = path.strip_prefix(directory).unwrap_or(path);
    let directory_name = directory.display().to_string();
    format!("{}/{}", directory_name.trim_end_matches('/'), name.display())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn locate_picks_the_longest_prefix() {
        let mut sources = SourceMap::single("pkg/package.yaml");
        sources.add("/playbooks/0".into(), "pkg/playbooks/a.yaml".into(), String::new());
        sources.add("/playbooks/1".into(), "pkg/playbooks/b.yaml".into(), "/0".into());
        sources.add("/playbooks/10".into(), "pkg/playbooks/c.yaml".into(), String::new());
        assert_eq!(sources.locate("/playbooks/1/steps/0"), ("pkg/playbooks/b.yaml".into(), "/0/steps/0".into()));
        assert_eq!(sources.locate("/playbooks/10/name"), ("pkg/playbooks/c.yaml".into(), "/name".into()));
        assert_eq!(sources.locate("/version"), ("pkg/package.yaml".into(), "/version".into()));
    }
}
