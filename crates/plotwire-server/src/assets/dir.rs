//! BokehJS read from a directory at start (`--bokehjs-dir`), for builds without the
//! `embedded-bokehjs` feature or to override the embedded bundles: the five minified
//! bundles, each checked to be BokehJS 3.9.2 by the version it declares.
//!
//! The `bokeh==3.9.2` Python package ships them in `bokeh/server/static/js`; the npm
//! tarball `@bokeh/bokehjs@3.9.2` in `package/build/js`. Both hold the same files.

use std::fmt::Write as _;
use std::path::{Path, PathBuf};

use sha2::{Digest, Sha512};

use super::{BOKEHJS_VERSION, BUNDLE_FILES};

/// What to tell someone whose BokehJS cannot be used.
const HOW: &str =
    "pass --bokehjs-dir (Config::bokehjs_dir) pointing at the `bokeh/server/static/js` \
directory of the bokeh==3.9.2 Python package (`python3 -c \"import bokeh, os; \
print(os.path.join(os.path.dirname(bokeh.__file__), 'server', 'static', 'js'))\"`), \
or build plotwire-server with the `embedded-bokehjs` feature";

/// The bytes a bundle's version is looked for in: it is declared in the first few KiB
/// (after the licence header) of every bundle.
const VERSION_WINDOW: usize = 64 * 1024;

/// Why no usable BokehJS was found.
#[derive(Debug, thiserror::Error)]
pub enum BokehJsError {
    /// This build embeds no bundles and no directory was given.
    #[error("no BokehJS: this build of plotwire-server has no embedded bundles; {HOW}")]
    NotEmbedded,
    /// A bundle could not be read.
    #[error("cannot read BokehJS bundle {path}: {source}; {HOW}")]
    Read {
        /// The file.
        path: PathBuf,
        /// The cause.
        source: std::io::Error,
    },
    /// A bundle declares no BokehJS version: it is not a BokehJS bundle.
    #[error("{path} declares no BokehJS version, so it is not a BokehJS {BOKEHJS_VERSION} bundle; {HOW}")]
    NoVersion {
        /// The file.
        path: PathBuf,
    },
    /// A bundle is of another BokehJS version.
    #[error(
        "{path} is BokehJS {found}, but plotwire speaks BokehJS {BOKEHJS_VERSION} only; {HOW}"
    )]
    WrongVersion {
        /// The file.
        path: PathBuf,
        /// The version it declares.
        found: String,
    },
}

/// Reads the five bundles of [`BUNDLE_FILES`] from `dir`, in page order, each checked to
/// declare BokehJS [`BOKEHJS_VERSION`].
pub fn read_dir(dir: &Path) -> Result<Vec<Vec<u8>>, BokehJsError> {
    BUNDLE_FILES
        .iter()
        .map(|(name, file_name)| {
            let path = dir.join(file_name);
            let contents = std::fs::read(&path).map_err(|source| BokehJsError::Read {
                path: path.clone(),
                source,
            })?;
            match declared_version(name, &contents) {
                None => Err(BokehJsError::NoVersion { path }),
                Some(v) if v != BOKEHJS_VERSION => Err(BokehJsError::WrongVersion {
                    path,
                    found: v.to_owned(),
                }),
                Some(_) => Ok(contents),
            }
        })
        .collect()
}

/// The version a bundle declares near its start: the main bundle sets
/// `version="X"`, each plugin calls its factory with `factory(root["Bokeh"], "X")`.
pub fn declared_version<'a>(name: &str, contents: &'a [u8]) -> Option<&'a str> {
    let window = &contents[..contents.len().min(VERSION_WINDOW)];
    let marker: &[u8] = if name == "bokeh" {
        b"version=\""
    } else {
        b"factory(root[\"Bokeh\"], \""
    };
    let at = window.windows(marker.len()).position(|w| w == marker)? + marker.len();
    let rest = &window[at..];
    let end = rest.iter().take(32).position(|&b| b == b'"')?;
    std::str::from_utf8(&rest[..end]).ok()
}

/// Lowercase hex SHA-512: a bundle's `?v=` value and `Etag`.
pub fn sha512_hex(contents: &[u8]) -> String {
    Sha512::digest(contents)
        .iter()
        .fold(String::with_capacity(128), |mut s, b| {
            let _ = write!(s, "{b:02x}");
            s
        })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn versions_are_read_where_bokehjs_declares_them() {
        let main = b"/* licence */\nfunction _(n,i,o,c,e){c(),o.version=\"3.9.2\"},";
        assert_eq!(declared_version("bokeh", main), Some("3.9.2"));
        let plugin = b"(function(root, factory) {\n  factory(root[\"Bokeh\"], \"3.8.0\");\n";
        assert_eq!(declared_version("bokeh-gl", plugin), Some("3.8.0"));
        assert_eq!(declared_version("bokeh-gl", main), None);
        assert_eq!(declared_version("bokeh", b"no marker"), None);
        let late = [b"x".repeat(VERSION_WINDOW), main.to_vec()].concat();
        assert_eq!(declared_version("bokeh", &late), None);
    }
}
