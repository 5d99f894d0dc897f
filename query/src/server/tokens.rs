//! The server's bearer tokens: a file of `NAME SHA256(token)` lines, so that the file (a
//! backup, a config repository) never holds a credential. `kubetrail token create` adds a
//! name and prints its token once; `token revoke` removes it. The server reads the file
//! again whenever it changes, so both take effect without a restart.

use std::path::{Path, PathBuf};
use std::sync::Mutex;
use std::time::SystemTime;

use sha2::{Digest, Sha256};

/// The tokens file as last read.
#[derive(Debug)]
pub struct Tokens {
    path: PathBuf,
    /// The file's modification time when read, and its names with their hashes.
    seen: Mutex<(Option<SystemTime>, Vec<NamedHash>)>,
}

type NamedHash = (String, [u8; 32]);

impl Tokens {
    /// The tokens file at `path`; it must exist and parse.
    pub fn open(path: &Path) -> Result<Tokens, String> {
        let tokens = Tokens {
            path: path.to_owned(),
            seen: Mutex::new((None, Vec::new())),
        };
        tokens.reload()?;
        Ok(tokens)
    }

    /// The user a token belongs to, `None` for no one.
    pub fn user_of(&self, token: &str) -> Option<String> {
        // A file that cannot be read now keeps the last good list: a half-written file
        // must not lock everyone out, nor let anyone in.
        if let Err(e) = self.reload() {
            tracing::warn!(file = %self.path.display(), "tokens file not reread: {e}");
        }
        let hash = digest(token);
        let seen = self.seen.lock().unwrap_or_else(|p| p.into_inner());
        seen.1
            .iter()
            .find(|(_, h)| constant_time_eq(h, &hash))
            .map(|(name, _)| name.clone())
    }

    fn reload(&self) -> Result<(), String> {
        let modified = std::fs::metadata(&self.path)
            .and_then(|m| m.modified())
            .map_err(|e| format!("{}: {e}", self.path.display()))?;
        let mut seen = self.seen.lock().unwrap_or_else(|p| p.into_inner());
        if seen.0 == Some(modified) {
            return Ok(());
        }
        let text = std::fs::read_to_string(&self.path)
            .map_err(|e| format!("{}: {e}", self.path.display()))?;
        *seen = (Some(modified), parse(&self.path, &text)?);
        Ok(())
    }
}

fn parse(path: &Path, text: &str) -> Result<Vec<NamedHash>, String> {
    let mut out = Vec::new();
    for (i, line) in text.lines().enumerate() {
        let line = line.trim();
        if line.is_empty() || line.starts_with('#') {
            continue;
        }
        let bad = |why: &str| format!("{}:{}: {why}", path.display(), i + 1);
        let (name, hash) = line
            .split_once(' ')
            .ok_or_else(|| bad("expected NAME SHA256"))?;
        let bytes = hex::decode(hash.trim()).map_err(|_| bad("the hash is not hex"))?;
        let hash: [u8; 32] = bytes
            .try_into()
            .map_err(|_| bad("the hash is not 32 bytes"))?;
        if !is_name(name) {
            return Err(bad("a name is letters, digits, '.', '_', '@' and '-'"));
        }
        out.push((name.to_owned(), hash));
    }
    Ok(out)
}

fn is_name(s: &str) -> bool {
    !s.is_empty()
        && s.len() <= 128
        && s.bytes()
            .all(|b| b.is_ascii_alphanumeric() || b"._@-".contains(&b))
}

fn digest(token: &str) -> [u8; 32] {
    Sha256::digest(token.as_bytes()).into()
}

fn constant_time_eq(a: &[u8; 32], b: &[u8; 32]) -> bool {
    a.iter().zip(b).fold(0u8, |acc, (x, y)| acc | (x ^ y)) == 0
}

/// Adds `name` to the tokens file (made, readable by its owner only, if missing) and
/// returns its new token, which nothing keeps.
pub fn create_token(path: &Path, name: &str) -> Result<String, String> {
    if !is_name(name) {
        return Err(format!(
            "'{name}': a name is letters, digits, '.', '_', '@' and '-'"
        ));
    }
    let text = match std::fs::read_to_string(path) {
        Ok(t) => t,
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => String::new(),
        Err(e) => return Err(format!("{}: {e}", path.display())),
    };
    if parse(path, &text)?.iter().any(|(n, _)| n == name) {
        return Err(format!(
            "'{name}' already has a token in {}; revoke it first",
            path.display()
        ));
    }
    let mut bytes = [0u8; 32];
    getrandom::fill(&mut bytes).map_err(|e| format!("no randomness: {e}"))?;
    let token = format!("kt_{}", hex::encode(bytes));
    let mut text = text;
    if !text.is_empty() && !text.ends_with('\n') {
        text.push('\n');
    }
    text.push_str(&format!("{name} {}\n", hex::encode(digest(&token))));
    write_private(path, &text)?;
    Ok(token)
}

/// Removes `name`'s token; says so when it had none.
pub fn revoke_token(path: &Path, name: &str) -> Result<(), String> {
    let text = std::fs::read_to_string(path).map_err(|e| format!("{}: {e}", path.display()))?;
    parse(path, &text)?;
    let kept: Vec<&str> = text
        .lines()
        .filter(|l| l.split_once(' ').map(|(n, _)| n) != Some(name))
        .collect();
    if kept.len() == text.lines().count() {
        return Err(format!("'{name}' has no token in {}", path.display()));
    }
    write_private(path, &(kept.join("\n") + "\n"))
}

/// Writes through a temporary file and a rename, so a server never reads half a file.
fn write_private(path: &Path, text: &str) -> Result<(), String> {
    use std::io::Write;
    let dir = path
        .parent()
        .filter(|p| !p.as_os_str().is_empty())
        .unwrap_or(Path::new("."));
    let mut file =
        tempfile::NamedTempFile::new_in(dir).map_err(|e| format!("{}: {e}", dir.display()))?;
    #[cfg(unix)]
    {
        use std::os::unix::fs::PermissionsExt;
        file.as_file()
            .set_permissions(std::fs::Permissions::from_mode(0o600))
            .map_err(|e| e.to_string())?;
    }
    file.write_all(text.as_bytes()).map_err(|e| e.to_string())?;
    file.persist(path)
        .map_err(|e| format!("{}: {e}", path.display()))?;
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn tokens_are_kept_as_hashes_and_changes_are_seen() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("tokens");
        let alice = create_token(&path, "alice@example.com").unwrap();
        assert!(alice.starts_with("kt_") && alice.len() == 67);
        let text = std::fs::read_to_string(&path).unwrap();
        assert!(!text.contains(&alice[3..]), "the file holds only hashes");
        let tokens = Tokens::open(&path).unwrap();
        assert_eq!(tokens.user_of(&alice).as_deref(), Some("alice@example.com"));
        assert_eq!(tokens.user_of("kt_nope"), None);
        assert!(create_token(&path, "alice@example.com")
            .unwrap_err()
            .contains("already"));
        // A second token, then a revocation: the open list follows the file.
        std::thread::sleep(std::time::Duration::from_millis(20));
        let bob = create_token(&path, "bob").unwrap();
        assert_eq!(tokens.user_of(&bob).as_deref(), Some("bob"));
        std::thread::sleep(std::time::Duration::from_millis(20));
        revoke_token(&path, "alice@example.com").unwrap();
        assert_eq!(tokens.user_of(&alice), None);
        assert_eq!(tokens.user_of(&bob).as_deref(), Some("bob"));
        assert!(revoke_token(&path, "carol")
            .unwrap_err()
            .contains("no token"));
        assert!(create_token(&path, "a b").is_err());
        #[cfg(unix)]
        {
            use std::os::unix::fs::PermissionsExt;
            let mode = std::fs::metadata(&path).unwrap().permissions().mode();
            assert_eq!(mode & 0o077, 0, "{mode:o}");
        }
        std::fs::write(&path, "carol not-hex\n").unwrap();
        assert!(Tokens::open(&path)
            .unwrap_err()
            .contains(":1: the hash is not hex"));
    }
}
