//! The JSON documents of an image, as the OCI image spec 1.1 and Docker's
//! schema2 define them: descriptors, manifests, indexes (manifest lists)
//! and the part of the config the store needs. Also platform selection
//! from an index. Shared by layout import and the registry client.

use serde::Deserialize;

/// OCI image index media type.
pub const OCI_INDEX: &str = "application/vnd.oci.image.index.v1+json";
/// OCI image manifest media type.
pub const OCI_MANIFEST: &str = "application/vnd.oci.image.manifest.v1+json";
/// Docker manifest list media type.
pub const DOCKER_LIST: &str = "application/vnd.docker.distribution.manifest.list.v2+json";
/// Docker schema2 manifest media type.
pub const DOCKER_MANIFEST: &str = "application/vnd.docker.distribution.manifest.v2+json";
/// Every manifest media type berth reads, for a registry's Accept header.
pub const ACCEPTED: [&str; 4] = [OCI_INDEX, OCI_MANIFEST, DOCKER_LIST, DOCKER_MANIFEST];

/// A content descriptor.
#[derive(Debug, Clone, Deserialize)]
pub struct Descriptor {
    /// Media type.
    #[serde(rename = "mediaType", default)]
    pub media_type: String,
    /// Digest.
    pub digest: String,
    /// Size in bytes.
    pub size: u64,
    /// Platform (in indexes).
    #[serde(default)]
    pub platform: Option<Platform>,
    /// Annotations.
    #[serde(default)]
    pub annotations: std::collections::HashMap<String, String>,
}

/// An image platform (`os/architecture[/variant]`).
#[derive(Debug, Clone, PartialEq, Eq, Deserialize)]
pub struct Platform {
    /// CPU architecture.
    pub architecture: String,
    /// Operating system.
    pub os: String,
    /// CPU variant (`v8` for arm64, `v7` for arm).
    #[serde(default)]
    pub variant: Option<String>,
}

impl Platform {
    /// linux/amd64, the default.
    pub fn linux_amd64() -> Self {
        Platform {
            architecture: "amd64".into(),
            os: "linux".into(),
            variant: None,
        }
    }

    /// Parses `os/arch[/variant]`, as `--platform` takes it.
    pub fn parse(s: &str) -> Result<Self, String> {
        let parts: Vec<&str> = s.split('/').collect();
        match parts.as_slice() {
            [os, arch] if !os.is_empty() && !arch.is_empty() => Ok(Platform {
                os: os.to_string(),
                architecture: arch.to_string(),
                variant: None,
            }),
            [os, arch, variant] if !os.is_empty() && !arch.is_empty() && !variant.is_empty() => {
                Ok(Platform {
                    os: os.to_string(),
                    architecture: arch.to_string(),
                    variant: Some(variant.to_string()),
                })
            }
            _ => Err(format!(
                "invalid platform {s:?}: expected os/arch or os/arch/variant"
            )),
        }
    }

    /// Whether an index entry's platform satisfies this one (a variant
    /// is compared only when this one names it).
    pub fn matches(&self, other: &Platform) -> bool {
        self.os == other.os
            && self.architecture == other.architecture
            && (self.variant.is_none() || self.variant == other.variant)
    }
}

impl std::fmt::Display for Platform {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "{}/{}", self.os, self.architecture)?;
        if let Some(v) = &self.variant {
            write!(f, "/{v}")?;
        }
        Ok(())
    }
}

/// An image index or Docker manifest list.
#[derive(Debug, Deserialize)]
pub struct Index {
    /// The manifests it lists.
    pub manifests: Vec<Descriptor>,
}

/// An image manifest (OCI or Docker schema2).
#[derive(Debug, Deserialize)]
pub struct Manifest {
    /// Schema version (2).
    #[serde(rename = "schemaVersion", default)]
    pub schema_version: u32,
    /// The config blob.
    pub config: Descriptor,
    /// The layer blobs, bottom first.
    pub layers: Vec<Descriptor>,
}

/// The parts of an image config the store reads.
#[derive(Debug, Deserialize)]
pub struct Config {
    /// The layers' uncompressed digests.
    pub rootfs: RootFs,
    /// Operating system.
    #[serde(default)]
    pub os: String,
    /// CPU architecture.
    #[serde(default)]
    pub architecture: String,
    /// CPU variant.
    #[serde(default)]
    pub variant: Option<String>,
}

/// `rootfs` of an image config.
#[derive(Debug, Deserialize)]
pub struct RootFs {
    /// Digests of the uncompressed layers, bottom first.
    pub diff_ids: Vec<String>,
}

/// Whether `media_type` is an index or manifest list.
pub fn is_index(media_type: &str) -> bool {
    media_type == OCI_INDEX || media_type == DOCKER_LIST
}

/// What kind of document `data` is: the `mediaType` field when present,
/// else guessed from its shape (OCI allows the field to be absent).
pub fn media_type_of(data: &[u8]) -> String {
    #[derive(Deserialize)]
    struct Probe {
        #[serde(rename = "mediaType", default)]
        media_type: String,
        #[serde(rename = "schemaVersion", default)]
        schema_version: u32,
        #[serde(default)]
        manifests: Option<serde_json::Value>,
    }
    match serde_json::from_slice::<Probe>(data) {
        Ok(p) if !p.media_type.is_empty() => p.media_type,
        Ok(p) if p.schema_version == 1 => {
            "application/vnd.docker.distribution.manifest.v1+json".into()
        }
        Ok(p) if p.manifests.is_some() => OCI_INDEX.into(),
        _ => OCI_MANIFEST.into(),
    }
}

/// The entry of `index` for `platform`.
pub fn select<'a>(index: &'a Index, platform: &Platform) -> Option<&'a Descriptor> {
    index
        .manifests
        .iter()
        .find(|m| m.platform.as_ref().is_some_and(|p| platform.matches(p)))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn platforms_parse_and_match() {
        let p = Platform::parse("linux/arm64/v8").unwrap();
        assert_eq!(p.to_string(), "linux/arm64/v8");
        assert!(Platform::parse("linux").is_err());
        assert!(Platform::parse("linux//v8").is_err());
        let any_variant = Platform::parse("linux/arm64").unwrap();
        assert!(any_variant.matches(&p));
        assert!(!p.matches(&Platform::parse("linux/arm64/v9").unwrap()));
        assert!(!Platform::linux_amd64().matches(&p));
    }

    #[test]
    fn selects_the_platform_from_an_index() {
        let index: Index = serde_json::from_str(
            r#"{"manifests":[
              {"mediaType":"x","digest":"sha256:a","size":1,"platform":{"os":"linux","architecture":"arm64","variant":"v8"}},
              {"mediaType":"x","digest":"sha256:b","size":1,"platform":{"os":"linux","architecture":"amd64"}}]}"#,
        )
        .unwrap();
        assert_eq!(
            select(&index, &Platform::linux_amd64()).unwrap().digest,
            "sha256:b"
        );
        assert_eq!(
            select(&index, &Platform::parse("linux/arm64").unwrap())
                .unwrap()
                .digest,
            "sha256:a"
        );
        assert!(select(&index, &Platform::parse("linux/s390x").unwrap()).is_none());
    }

    #[test]
    fn media_types_are_read_or_guessed() {
        assert_eq!(media_type_of(br#"{"mediaType":"a/b"}"#), "a/b");
        assert_eq!(
            media_type_of(br#"{"schemaVersion":2,"manifests":[]}"#),
            OCI_INDEX
        );
        assert_eq!(
            media_type_of(br#"{"schemaVersion":2,"config":{}}"#),
            OCI_MANIFEST
        );
        assert!(media_type_of(br#"{"schemaVersion":1}"#).contains("v1"));
    }
}
