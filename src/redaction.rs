//! The redaction key, kept outside the lake: a reader of the lake who also had the key
//! could test guesses (a short password, a known token) against its markers.
//!
//! Where it comes from: `KUBETRAIL_REDACTION_KEY` (the key itself, for a secret store that
//! hands out variables), else `[redaction] key_file`, else
//! `$XDG_CONFIG_HOME/kubetrail/redaction.key` (`~/.config/…`), created 0600 with a new
//! random key where missing. A file others can read is refused. Every ingester of one lake
//! needs the same key for markers to stay comparable across them.

use std::io::Write;
use std::path::{Path, PathBuf};

use anyhow::{bail, Context};
use kubetrail_lake::Lake;
use kubetrail_schemas::{EnvValues, Redactor};

use crate::config::Redaction;

/// A key of 32 random bytes, written as hex.
const KEY_BYTES: usize = 32;
/// Fewer bytes than this is not a key worth the name.
const LEAST_KEY_BYTES: usize = 16;

/// The redactor ingestion uses: the key, the configured extra paths and env policy.
pub async fn redactor(
    lake: &Lake,
    settings: &Redaction,
    extra_paths: &[String],
) -> anyhow::Result<Redactor> {
    let env_values: EnvValues = match &settings.env_values {
        Some(policy) => policy
            .parse()
            .map_err(|e| anyhow::anyhow!("[redaction] env_values: {e}"))?,
        None => EnvValues::default(),
    };
    let key = match std::env::var("KUBETRAIL_REDACTION_KEY") {
        Ok(k) if !k.is_empty() => k.into_bytes(),
        _ => {
            refuse_in_lake_key(lake).await?;
            let file = match &settings.key_file {
                Some(file) => file.clone(),
                None => default_key_file()?,
            };
            key_from_file(&file)?
        }
    };
    Ok(Redactor::new(&key, extra_paths).with_env_values(env_values))
}

/// A lake written before the key moved out still holds it: the user moves it, once.
async fn refuse_in_lake_key(lake: &Lake) -> anyhow::Result<()> {
    if lake.legacy_redaction_key().await?.is_some() {
        bail!(
            "the lake keeps its redaction key inside it ({}), where every reader of the lake \
             can test guesses against its markers: run `kubetrail lake move-key --to FILE` \
             once, then give every ingester that file ([redaction] key_file)",
            lake.legacy_redaction_key_location()
        );
    }
    Ok(())
}

fn default_key_file() -> anyhow::Result<PathBuf> {
    let config = match std::env::var_os("XDG_CONFIG_HOME").filter(|d| !d.is_empty()) {
        Some(dir) => PathBuf::from(dir),
        None => match std::env::var_os("HOME").filter(|d| !d.is_empty()) {
            Some(home) => PathBuf::from(home).join(".config"),
            None => bail!("no HOME to keep the redaction key in: set [redaction] key_file"),
        },
    };
    Ok(config.join("kubetrail").join("redaction.key"))
}

/// Reads the key file, creating it with a new key if it does not exist.
pub fn key_from_file(file: &Path) -> anyhow::Result<Vec<u8>> {
    let shown = file.display();
    match std::fs::metadata(file) {
        Ok(_) => {}
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => {
            let mut key = [0u8; KEY_BYTES];
            getrandom::fill(&mut key).map_err(|e| anyhow::anyhow!("random key: {e}"))?;
            write_key_file(file, &hex::encode(key))?;
            tracing::info!(file = %shown, "created a redaction key");
        }
        Err(e) => return Err(e).with_context(|| format!("redaction key {shown}")),
    }
    check_private(file)?;
    let text = std::fs::read_to_string(file).with_context(|| format!("redaction key {shown}"))?;
    match hex::decode(text.trim()) {
        Ok(key) if key.len() >= LEAST_KEY_BYTES => Ok(key),
        _ => bail!(
            "redaction key {shown}: not a key (expected at least {} hex digits)",
            2 * LEAST_KEY_BYTES
        ),
    }
}

/// Writes a new key file readable by its owner only; never replaces one.
pub fn write_key_file(file: &Path, hex_key: &str) -> anyhow::Result<()> {
    let shown = file.display();
    if let Some(dir) = file.parent().filter(|d| !d.as_os_str().is_empty()) {
        let mut builder = std::fs::DirBuilder::new();
        builder.recursive(true);
        #[cfg(unix)]
        std::os::unix::fs::DirBuilderExt::mode(&mut builder, 0o700);
        builder
            .create(dir)
            .with_context(|| format!("redaction key {shown}"))?;
    }
    let mut options = std::fs::OpenOptions::new();
    options.write(true).create_new(true);
    #[cfg(unix)]
    std::os::unix::fs::OpenOptionsExt::mode(&mut options, 0o600);
    match options.open(file) {
        Ok(mut f) => f
            .write_all(format!("{hex_key}\n").as_bytes())
            .with_context(|| format!("redaction key {shown}")),
        // Another ingester made it first: theirs is the key.
        Err(e) if e.kind() == std::io::ErrorKind::AlreadyExists => Ok(()),
        Err(e) => Err(e).with_context(|| format!("redaction key {shown}")),
    }
}

#[cfg(unix)]
fn check_private(file: &Path) -> anyhow::Result<()> {
    use std::os::unix::fs::PermissionsExt;
    let mode = std::fs::metadata(file)?.permissions().mode() & 0o777;
    if mode & 0o077 != 0 {
        bail!(
            "redaction key {} can be read by others (mode {mode:04o}): chmod 600 {}",
            file.display(),
            file.display()
        );
    }
    Ok(())
}

#[cfg(not(unix))]
fn check_private(_: &Path) -> anyhow::Result<()> {
    Ok(())
}

/// `kubetrail lake move-key --to FILE`: the old in-lake key into a file of its own, then
/// out of the lake. Markers written with it stay comparable with new ones (theirs are the
/// first 24 hex digits of the new, longer ones).
pub async fn move_key(lake: &Lake, to: &Path) -> anyhow::Result<()> {
    let Some(key) = lake.legacy_redaction_key().await? else {
        bail!(
            "the lake holds no redaction key ({} does not exist): nothing to move",
            lake.legacy_redaction_key_location()
        );
    };
    if hex::decode(&key).map_or(true, |k| k.len() < LEAST_KEY_BYTES) {
        bail!(
            "{} is not a key; it was left where it is",
            lake.legacy_redaction_key_location()
        );
    }
    if to.exists() {
        let there = std::fs::read_to_string(to).with_context(|| to.display().to_string())?;
        if there.trim() != key {
            bail!(
                "{} already holds another key; choose another file (the lake's key was left where it is)",
                to.display()
            );
        }
    } else {
        write_key_file(to, &key)?;
    }
    check_private(to)?;
    lake.remove_legacy_redaction_key().await?;
    println!(
        "moved the redaction key to {}; set [redaction] key_file = \"{}\" for every ingester",
        to.display(),
        to.display()
    );
    Ok(())
}
