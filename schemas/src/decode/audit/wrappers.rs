//! The cloud wrappers around audit events (EKS CloudWatch batches, AKS diagnostic logs):
//! which one an event came in, and the cluster it names.

use std::borrow::Cow;

use super::{decode_nested, part_of, Str, Text};
use crate::decode::{DecodeOptions, Output};
use crate::rows::AuditEvent;

/// What the wrappers around an event said: which one it came in, and the cluster it names.
#[derive(Clone)]
pub(super) struct Wrapper<'a> {
    pub(super) format: &'static str,
    pub(super) cluster: Option<Cow<'a, str>>,
}

impl<'a> Wrapper<'a> {
    /// The wrapper `format` naming the cluster found in `text` by `find`, else this one's.
    pub(super) fn inner(
        &self,
        format: &'static str,
        text: &Str<'a>,
        find: fn(&str) -> Option<&str>,
    ) -> Self {
        let found = text.as_ref().and_then(|t| part_of(&t.0, find));
        Wrapper {
            format,
            cluster: found.or_else(|| self.cluster.clone()),
        }
    }
}

/// Decodes an event carried as a JSON string inside a wrapper. Its rows borrow from the
/// record unless the string held escapes, when they get texts of their own.
pub(super) fn decode_text<'a>(
    text: &Text<'a>,
    options: &DecodeOptions,
    wrapper: Wrapper<'a>,
    depth: u8,
    out: &mut Output<AuditEvent<'a>>,
) {
    match &text.0 {
        Cow::Borrowed(text) => decode_nested(text, options, wrapper, depth, out),
        Cow::Owned(text) => {
            let mut inner: Output<AuditEvent> = Output::default();
            decode_nested(text, options, wrapper, depth, &mut inner);
            out.rows
                .extend(inner.rows.into_iter().map(|row| row.into_owned()));
            out.rejected.extend(inner.rejected);
        }
    }
}

/// `/aws/eks/<cluster>/cluster`.
pub(super) fn eks_cluster(log_group: &str) -> Option<&str> {
    let rest = log_group.strip_prefix("/aws/eks/")?;
    rest.strip_suffix("/cluster")
        .or(Some(rest))
        .filter(|c| !c.is_empty())
}

/// `/SUBSCRIPTIONS/…/MANAGEDCLUSTERS/<cluster>`.
pub(super) fn aks_cluster(resource_id: &str) -> Option<&str> {
    let lower = resource_id.to_ascii_lowercase();
    let at = lower.find("/managedclusters/")? + "/managedclusters/".len();
    resource_id[at..]
        .split('/')
        .next()
        .filter(|c| !c.is_empty())
}
