//! The rule pack: every rule file under a directory (`<area>/<id>.yaml`), or the pack built
//! into the binary. A file that does not load is reported and left out; it never takes the
//! other rules down.

use std::path::{Path, PathBuf};

use crate::rule::{Rule, RuleProblem};

mod embedded {
    include!(concat!(env!("OUT_DIR"), "/embedded_rules.rs"));
}

/// The rules that loaded and the files that did not.
#[derive(Debug, Default)]
pub struct RulePack {
    pub rules: Vec<Rule>,
    pub problems: Vec<RuleProblem>,
}

impl RulePack {
    /// The pack shipped with kubetrail (`detections/rules/` at build time).
    pub fn builtin() -> RulePack {
        let mut pack = RulePack::default();
        for (path, text) in embedded::EMBEDDED {
            let area = path.split('/').next().unwrap_or_default();
            pack.add(Rule::parse(Path::new(path), area, text));
        }
        pack.finish()
    }

    /// Every `<area>/<id>.yaml` under `dir`.
    pub fn load(dir: &Path) -> Result<RulePack, String> {
        let areas = std::fs::read_dir(dir)
            .map_err(|e| format!("cannot read rules directory {}: {e}", dir.display()))?;
        let mut files: Vec<(String, PathBuf)> = Vec::new();
        for area in areas.flatten() {
            let path = area.path();
            if !path.is_dir() {
                continue;
            }
            let name = area.file_name().to_string_lossy().into_owned();
            for f in std::fs::read_dir(&path).into_iter().flatten().flatten() {
                let p = f.path();
                if p.extension().is_some_and(|e| e == "yaml" || e == "yml") {
                    files.push((name.clone(), p));
                }
            }
        }
        files.sort_by(|a, b| a.1.cmp(&b.1));
        let mut pack = RulePack::default();
        for (area, path) in files {
            match std::fs::read_to_string(&path) {
                Ok(text) => pack.add(Rule::parse(&path, &area, &text)),
                Err(e) => pack.problems.push(RuleProblem {
                    file: path.display().to_string(),
                    field: "(file)".into(),
                    reason: e.to_string(),
                }),
            }
        }
        if pack.rules.is_empty() && pack.problems.is_empty() {
            return Err(format!(
                "no rule files (<area>/<id>.yaml) under {}",
                dir.display()
            ));
        }
        Ok(pack.finish())
    }

    /// This pack and another (the built-in one beside a directory of imported rules); an
    /// id in both is reported and neither rule runs.
    pub fn with(mut self, other: RulePack) -> RulePack {
        self.rules.extend(other.rules);
        self.problems.extend(other.problems);
        self.finish()
    }

    fn add(&mut self, rule: Result<Rule, RuleProblem>) {
        match rule {
            Ok(r) => self.rules.push(r),
            Err(p) => self.problems.push(p),
        }
    }

    /// Two files with one id: both are reported and neither runs, since an alert id must
    /// say which rule made it.
    fn finish(mut self) -> RulePack {
        self.rules.sort_by(|a, b| a.id.cmp(&b.id));
        let mut dup = Vec::new();
        for w in self.rules.windows(2) {
            if w[0].id == w[1].id {
                dup.push(w[0].id.clone());
            }
        }
        if !dup.is_empty() {
            for id in &dup {
                self.problems.push(RuleProblem {
                    file: format!("{id}.yaml"),
                    field: "id".into(),
                    reason: "more than one rule file has this id".into(),
                });
            }
            self.rules.retain(|r| !dup.contains(&r.id));
        }
        self
    }

    pub fn get(&self, id: &str) -> Option<&Rule> {
        self.rules.iter().find(|r| r.id == id)
    }
}
