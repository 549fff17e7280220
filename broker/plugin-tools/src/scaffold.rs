//! `switchyard plugin new NAME --lang L --kind K`: a plugin project that
//! builds as generated. Every language's template of a kind behaves the
//! same way, so one `cases.toml` per kind tests them all.

use std::path::PathBuf;

use anyhow::{Context, bail};

use super::language::{Kind, Language, MANIFEST_FILE, ProjectManifest};
use super::wit::write_wit;

/// (path in the project, template text) for a language and kind.
fn source_files(
    language: Language,
    kind: Kind,
) -> anyhow::Result<Vec<(&'static str, &'static str)>> {
    macro_rules! by_kind {
        ($dir:literal, $suffix:literal) => {
            match kind {
                Kind::Exchange => include_str!(concat!("templates/", $dir, "/exchange", $suffix)),
                Kind::DeadLetter => {
                    include_str!(concat!("templates/", $dir, "/dead-letter", $suffix))
                }
                Kind::Filter => include_str!(concat!("templates/", $dir, "/filter", $suffix)),
                Kind::SetRouter => {
                    include_str!(concat!("templates/", $dir, "/set-router", $suffix))
                }
            }
        };
    }
    Ok(match language {
        Language::Rust => vec![
            ("Cargo.toml", include_str!("templates/rust/Cargo.toml")),
            ("src/lib.rs", by_kind!("rust", ".rs")),
        ],
        Language::Python => {
            let mut files = vec![("app.py", by_kind!("python", ".app.py"))];
            if kind == Kind::Exchange {
                files.push(("exchange.py", include_str!("templates/python/exchange.py")));
            }
            files
        }
        Language::Js => vec![
            ("package.json", include_str!("templates/js/package.json")),
            ("src/index.js", by_kind!("js", ".js")),
        ],
        Language::C => vec![("plugin.c", by_kind!("c", ".c"))],
        Language::Assemblyscript => {
            if kind != Kind::Exchange {
                bail!(
                    "AssemblyScript plugins can be exchanges only for now (AssemblyScript has no \
                     WIT bindings generator; the exchange world's ABI glue is written by hand). \
                     Use --lang rust, c, python or js for a {} plugin",
                    kind.as_str()
                );
            }
            vec![
                (
                    "package.json",
                    include_str!("templates/assemblyscript/package.json"),
                ),
                (
                    "assembly/index.ts",
                    include_str!("templates/assemblyscript/index.ts"),
                ),
                (
                    "assembly/tsconfig.json",
                    include_str!("templates/assemblyscript/tsconfig.json"),
                ),
            ]
        }
    })
}

fn cases(kind: Kind) -> &'static str {
    match kind {
        Kind::Exchange => include_str!("templates/common/exchange.cases.toml"),
        Kind::DeadLetter => include_str!("templates/common/dead-letter.cases.toml"),
        Kind::Filter => include_str!("templates/common/filter.cases.toml"),
        Kind::SetRouter => include_str!("templates/common/set-router.cases.toml"),
    }
}

/// What the README says about the language: where the code is and what
/// to install first.
fn readme_parts(language: Language) -> (&'static str, &'static str) {
    match language {
        Language::Rust => (
            "`src/lib.rs`",
            "\nBuilding needs Debian's Rust for wasm: `apt-get install rustc-web cargo-web rust-web-src lld-22`.\n",
        ),
        Language::C => (
            "`plugin.c` (bindings are generated into `build/bindings/` by each build)",
            "\nBuilding needs clang for wasm: `apt-get install clang-19 lld-19 wasi-libc libclang-rt-19-dev-wasm32`.\n",
        ),
        Language::Python => (
            "`app.py` (and, for an exchange, its router in `exchange.py`)",
            "\nBuilding needs componentize-py: `python3 -m venv .venv && .venv/bin/pip install componentize-py==0.25.1`.\n",
        ),
        Language::Js => (
            "`src/index.js`",
            "\nBuilding needs Node.js and the pinned componentize-js: `npm install` in this directory.\n",
        ),
        Language::Assemblyscript => (
            "`assembly/index.ts` (`assembly/abi.ts` and `assembly/types.ts` are the canonical-ABI glue, rewritten by every build)",
            "\nBuilding needs Node.js and the pinned AssemblyScript compiler: `npm install` in this directory.\n",
        ),
    }
}

pub fn new_project(
    name: &str,
    language: Language,
    kind: Kind,
    dir: Option<PathBuf>,
) -> anyhow::Result<()> {
    // A name every language's package format accepts (Cargo, npm, files).
    let valid = name.len() <= 64
        && name.starts_with(|c: char| c.is_ascii_lowercase())
        && name
            .chars()
            .all(|c| c.is_ascii_lowercase() || c.is_ascii_digit() || c == '-');
    if !valid {
        bail!(
            "plugin name {name:?} must start with a-z and hold only a-z, 0-9 and '-' (at most 64)"
        );
    }
    let dir = dir.unwrap_or_else(|| PathBuf::from(name));
    if dir.join(MANIFEST_FILE).exists() {
        bail!("{} already holds a plugin project", dir.display());
    }
    let sources = source_files(language, kind)?;
    let (source, usage) = readme_parts(language);
    let fill = |template: &str| {
        template
            .replace("{{name}}", name)
            .replace("{{kind}}", kind.as_str())
            .replace("{{language}}", language.as_str())
            .replace("{{source}}", source)
            .replace("{{usage}}", usage)
    };
    let manifest = toml::to_string(&ProjectManifest {
        name: name.into(),
        kind,
        language: Some(language),
    })?;
    let mut files: Vec<(&str, String)> = vec![
        (MANIFEST_FILE, manifest),
        (
            "README.md",
            fill(include_str!("templates/common/README.md")),
        ),
        ("cases.toml", fill(cases(kind))),
        (
            ".gitignore",
            include_str!("templates/common/gitignore").into(),
        ),
    ];
    files.extend(sources.into_iter().map(|(path, text)| (path, fill(text))));
    for (path, text) in &files {
        let path = dir.join(path);
        if let Some(parent) = path.parent() {
            std::fs::create_dir_all(parent)
                .with_context(|| format!("creating {}", parent.display()))?;
        }
        std::fs::write(&path, text).with_context(|| format!("writing {}", path.display()))?;
    }
    write_wit(&dir.join("wit"))?;
    if language == Language::Assemblyscript {
        super::build::write_assemblyscript_glue(&dir)?;
    }
    eprintln!(
        "created {} ({} {} plugin): {}\nnext: cd {} && switchyard plugin build",
        dir.display(),
        language.as_str(),
        kind.as_str(),
        files.iter().map(|(p, _)| *p).collect::<Vec<_>>().join(", "),
        dir.display()
    );
    Ok(())
}
