//! The datanet store: one SQLite file (WAL) holding datanets, their contributions with signatures
//! and curation, and snapshots. Every write is one transaction, so a process killed midway leaves
//! the file as it was before the call.

use std::path::{Path, PathBuf};

use alloy::primitives::{Address, B256};
use alloy::sol_types::SolValue;
use rusqlite::{Connection, OptionalExtension, TransactionBehavior, params};
use serde::Serialize;
use tributary_receipt::{MerkleTree, leaf_hash_encoded};

use crate::minhash;
use crate::signed::{Review, SignedReview, Submission, recover};

#[derive(Debug, thiserror::Error)]
pub enum DatanetError {
    #[error("{path}: {source}")]
    Db {
        path: PathBuf,
        #[source]
        source: rusqlite::Error,
    },
    #[error("no datanet named `{0}`")]
    NoDatanet(String),
    #[error("a datanet named `{0}` already exists")]
    Exists(String),
    #[error("datanet name `{0}` is invalid: {1}")]
    BadName(String, &'static str),
    #[error("datanet `{datanet}`: no contribution with content hash {hash}")]
    NoContribution { datanet: String, hash: B256 },
    #[error("datanet `{datanet}`: the review is signed by {signer}, not the validator {validator}")]
    NotValidator {
        datanet: String,
        signer: Address,
        validator: Address,
    },
    #[error("datanet `{datanet}`: review of {hash}: {reason}")]
    BadReview {
        datanet: String,
        hash: B256,
        reason: String,
    },
    #[error("datanet `{datanet}`: no snapshot {version}")]
    NoSnapshot { datanet: String, version: u64 },
    #[error("datanet `{0}`: nothing accepted to snapshot")]
    EmptySnapshot(String),
    #[error("datanet `{datanet}`: snapshot {version} has no contribution {hash}")]
    NotInSnapshot {
        datanet: String,
        version: u64,
        hash: B256,
    },
}

/// Why one submission was not added.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
#[serde(rename_all = "camelCase", tag = "kind")]
pub enum Refusal {
    Unsigned,
    BadSignature {
        reason: String,
    },
    WrongSigner {
        contributor: Address,
        signer: Address,
    },
    Duplicate,
    Empty,
}

impl std::fmt::Display for Refusal {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            Refusal::Unsigned => write!(f, "not signed"),
            Refusal::BadSignature { reason } => write!(f, "{reason}"),
            Refusal::WrongSigner {
                contributor,
                signer,
            } => write!(f, "signed by {signer}, not the contributor {contributor}"),
            Refusal::Duplicate => write!(f, "an exact duplicate of a contribution already here"),
            Refusal::Empty => write!(f, "empty content"),
        }
    }
}

/// What an import did, submission by submission.
#[derive(Debug, Clone, Default, PartialEq, Serialize)]
#[serde(rename_all = "camelCase")]
pub struct ImportReport {
    /// Content hashes added (pending review).
    pub added: Vec<B256>,
    /// Index in the submitted list, content hash, and why it was refused.
    pub refused: Vec<(usize, B256, Refusal)>,
    /// Added content hash and the earlier contribution it nearly duplicates (similarity ≥ 0.8).
    pub near_duplicates: Vec<(B256, B256)>,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
#[serde(rename_all = "lowercase")]
pub enum Status {
    Pending,
    Accepted,
    Rejected,
}

impl Status {
    fn parse(s: &str) -> Status {
        match s {
            "accepted" => Status::Accepted,
            "rejected" => Status::Rejected,
            _ => Status::Pending,
        }
    }
}

/// A stored contribution.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
#[serde(rename_all = "camelCase")]
pub struct Contribution {
    pub content_hash: B256,
    pub contributor: Address,
    pub license: String,
    pub status: Status,
    /// Why it was rejected.
    pub reason: Option<String>,
    pub near_duplicate_of: Option<B256>,
    pub content: String,
}

/// A snapshot: the accepted set at a version, under a Merkle root.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
#[serde(rename_all = "camelCase")]
pub struct Snapshot {
    pub datanet: String,
    pub version: u64,
    pub root: B256,
    pub contributions: usize,
}

#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
#[serde(rename_all = "camelCase")]
pub struct Summary {
    pub name: String,
    pub validator: Address,
    pub pending: usize,
    pub accepted: usize,
    pub rejected: usize,
    pub snapshots: Vec<Snapshot>,
}

/// A contribution's leaf in a snapshot tree: OpenZeppelin StandardMerkleTree over
/// `["bytes32", "address"]` (content hash, contributor), the receipt batches' conventions.
pub fn contribution_leaf(content_hash: B256, contributor: Address) -> B256 {
    leaf_hash_encoded(&(content_hash, contributor).abi_encode_params())
}

#[derive(Debug)]
pub struct Store {
    conn: Connection,
    path: PathBuf,
}

const SCHEMA: &str = "
CREATE TABLE IF NOT EXISTS datanets (
    id INTEGER PRIMARY KEY,
    name TEXT NOT NULL UNIQUE,
    validator BLOB NOT NULL,
    description TEXT NOT NULL DEFAULT ''
);
CREATE TABLE IF NOT EXISTS contributions (
    id INTEGER PRIMARY KEY,
    datanet INTEGER NOT NULL REFERENCES datanets(id),
    content_hash BLOB NOT NULL,
    content TEXT NOT NULL,
    contributor BLOB NOT NULL,
    license TEXT NOT NULL,
    signature BLOB NOT NULL,
    status TEXT NOT NULL DEFAULT 'pending' CHECK (status IN ('pending', 'accepted', 'rejected')),
    reason TEXT,
    review_signature BLOB,
    minhash BLOB,
    near_duplicate_of BLOB,
    UNIQUE (datanet, content_hash)
);
CREATE TABLE IF NOT EXISTS snapshots (
    datanet INTEGER NOT NULL REFERENCES datanets(id),
    version INTEGER NOT NULL,
    root BLOB NOT NULL,
    PRIMARY KEY (datanet, version)
);
CREATE TABLE IF NOT EXISTS snapshot_members (
    datanet INTEGER NOT NULL,
    version INTEGER NOT NULL,
    contribution INTEGER NOT NULL REFERENCES contributions(id),
    PRIMARY KEY (datanet, version, contribution)
);
";

fn db_error(path: &Path) -> impl Fn(rusqlite::Error) -> DatanetError + use<> {
    let path = path.to_path_buf();
    move |source| DatanetError::Db {
        path: path.clone(),
        source,
    }
}

fn b256(bytes: Vec<u8>) -> B256 {
    B256::try_from(bytes.as_slice()).unwrap_or_default()
}

fn address(bytes: Vec<u8>) -> Address {
    Address::try_from(bytes.as_slice()).unwrap_or_default()
}

impl Store {
    pub fn open(path: &Path) -> Result<Self, DatanetError> {
        let db = db_error(path);
        let conn = Connection::open(path).map_err(&db)?;
        conn.pragma_update(None, "journal_mode", "WAL")
            .map_err(&db)?;
        conn.pragma_update(None, "foreign_keys", "ON")
            .map_err(&db)?;
        conn.execute_batch(SCHEMA).map_err(&db)?;
        Ok(Self {
            conn,
            path: path.to_path_buf(),
        })
    }

    fn db(&self) -> impl Fn(rusqlite::Error) -> DatanetError + use<> {
        db_error(&self.path)
    }

    /// An IMMEDIATE transaction (it takes the write lock at once, so two writers queue instead
    /// of failing at commit), with the error mapper for its statements.
    fn begin(
        &mut self,
    ) -> Result<
        (
            rusqlite::Transaction<'_>,
            impl Fn(rusqlite::Error) -> DatanetError + use<>,
        ),
        DatanetError,
    > {
        let db = db_error(&self.path);
        let tx = self
            .conn
            .transaction_with_behavior(TransactionBehavior::Immediate)
            .map_err(&db)?;
        Ok((tx, db))
    }

    fn datanet(&self, name: &str) -> Result<(i64, Address), DatanetError> {
        self.conn
            .query_row(
                "SELECT id, validator FROM datanets WHERE name = ?1",
                [name],
                |r| Ok((r.get::<_, i64>(0)?, address(r.get(1)?))),
            )
            .optional()
            .map_err(self.db())?
            .ok_or_else(|| DatanetError::NoDatanet(name.into()))
    }

    pub fn create(
        &mut self,
        name: &str,
        validator: Address,
        description: &str,
    ) -> Result<(), DatanetError> {
        if name.is_empty() || name.len() > 64 {
            return Err(DatanetError::BadName(name.into(), "1 to 64 characters"));
        }
        if !name
            .chars()
            .all(|c| c.is_ascii_alphanumeric() || "-_.".contains(c))
        {
            return Err(DatanetError::BadName(
                name.into(),
                "only ASCII letters, digits, '-', '_' and '.'",
            ));
        }
        let inserted = self
            .conn
            .execute(
                "INSERT OR IGNORE INTO datanets (name, validator, description) VALUES (?1, ?2, ?3)",
                params![name, validator.as_slice(), description],
            )
            .map_err(self.db())?;
        if inserted == 0 {
            return Err(DatanetError::Exists(name.into()));
        }
        Ok(())
    }

    /// Adds submissions as pending contributions, in one transaction: each is checked (signed by
    /// its contributor over this datanet's name, not an exact duplicate) and refused with its
    /// reason otherwise; near-duplicates are added and flagged.
    pub fn add(
        &mut self,
        name: &str,
        submissions: &[Submission],
    ) -> Result<ImportReport, DatanetError> {
        let (id, _) = self.datanet(name)?;
        let (tx, db) = self.begin()?;
        let mut known: Vec<(B256, [u64; minhash::HASHES])> = {
            let mut stmt = tx
                .prepare("SELECT content_hash, minhash FROM contributions WHERE datanet = ?1 AND minhash IS NOT NULL")
                .map_err(&db)?;
            let rows = stmt
                .query_map([id], |r| Ok((b256(r.get(0)?), r.get::<_, Vec<u8>>(1)?)))
                .map_err(&db)?;
            let mut out = Vec::new();
            for row in rows {
                let (hash, bytes) = row.map_err(&db)?;
                if let Some(sig) = minhash::from_bytes(&bytes) {
                    out.push((hash, sig));
                }
            }
            out
        };
        let mut report = ImportReport::default();
        for (index, s) in submissions.iter().enumerate() {
            let hash = s.content_hash();
            let refusal = if s.content.trim().is_empty() {
                Some(Refusal::Empty)
            } else {
                match &s.signature {
                    None => Some(Refusal::Unsigned),
                    Some(sig) => match recover(&s.message(name), sig) {
                        Err(reason) => Some(Refusal::BadSignature { reason }),
                        Ok(signer) if signer != s.contributor => Some(Refusal::WrongSigner {
                            contributor: s.contributor,
                            signer,
                        }),
                        Ok(_) => None,
                    },
                }
            };
            if let Some(refusal) = refusal {
                report.refused.push((index, hash, refusal));
                continue;
            }
            let sig = minhash::signature(&s.content);
            let near = sig.and_then(|sig| {
                known
                    .iter()
                    .find(|(_, other)| minhash::similarity(&sig, other) >= minhash::NEAR_DUPLICATE)
                    .map(|(h, _)| *h)
            });
            let inserted = tx
                .execute(
                    "INSERT OR IGNORE INTO contributions
                     (datanet, content_hash, content, contributor, license, signature, minhash, near_duplicate_of)
                     VALUES (?1, ?2, ?3, ?4, ?5, ?6, ?7, ?8)",
                    params![
                        id,
                        hash.as_slice(),
                        s.content,
                        s.contributor.as_slice(),
                        s.license,
                        s.signature.as_ref().map(|b| b.to_vec()),
                        sig.as_ref().map(minhash::to_bytes),
                        near.map(|h| h.to_vec()),
                    ],
                )
                .map_err(&db)?;
            if inserted == 0 {
                report.refused.push((index, hash, Refusal::Duplicate));
                continue;
            }
            if let Some(near) = near {
                report.near_duplicates.push((hash, near));
            }
            if let Some(sig) = sig {
                known.push((hash, sig));
            }
            report.added.push(hash);
        }
        tx.commit().map_err(&db)?;
        Ok(report)
    }

    /// Applies a review signed by the datanet's validator.
    pub fn review(&mut self, name: &str, review: &SignedReview) -> Result<(), DatanetError> {
        let (id, validator) = self.datanet(name)?;
        let message = Review {
            datanet: name.to_owned(),
            contentHash: review.content_hash,
            accepted: review.accepted,
            reason: review.reason.clone(),
        };
        let bad = |reason: String| DatanetError::BadReview {
            datanet: name.into(),
            hash: review.content_hash,
            reason,
        };
        let signer = recover(&message, &review.signature).map_err(bad)?;
        if signer != validator {
            return Err(DatanetError::NotValidator {
                datanet: name.into(),
                signer,
                validator,
            });
        }
        if !review.accepted && review.reason.trim().is_empty() {
            return Err(bad("a rejection needs a reason".into()));
        }
        let updated = self
            .conn
            .execute(
                "UPDATE contributions SET status = ?1, reason = ?2, review_signature = ?3
                 WHERE datanet = ?4 AND content_hash = ?5",
                params![
                    if review.accepted {
                        "accepted"
                    } else {
                        "rejected"
                    },
                    (!review.accepted).then_some(&review.reason),
                    review.signature.to_vec(),
                    id,
                    review.content_hash.as_slice(),
                ],
            )
            .map_err(self.db())?;
        if updated == 0 {
            return Err(DatanetError::NoContribution {
                datanet: name.into(),
                hash: review.content_hash,
            });
        }
        Ok(())
    }

    /// Freezes the accepted contributions as the next version.
    pub fn snapshot(&mut self, name: &str) -> Result<Snapshot, DatanetError> {
        let (id, _) = self.datanet(name)?;
        let (tx, db) = self.begin()?;
        let members: Vec<(i64, B256, Address)> = {
            let mut stmt = tx
                .prepare("SELECT id, content_hash, contributor FROM contributions WHERE datanet = ?1 AND status = 'accepted' ORDER BY id")
                .map_err(&db)?;
            let rows = stmt
                .query_map([id], |r| {
                    Ok((r.get(0)?, b256(r.get(1)?), address(r.get(2)?)))
                })
                .map_err(&db)?;
            rows.collect::<Result<_, _>>().map_err(&db)?
        };
        if members.is_empty() {
            return Err(DatanetError::EmptySnapshot(name.into()));
        }
        let tree = MerkleTree::new(
            members
                .iter()
                .map(|(_, h, a)| contribution_leaf(*h, *a))
                .collect(),
        )
        .expect("not empty");
        let version: i64 = tx
            .query_row(
                "SELECT COALESCE(MAX(version), 0) + 1 FROM snapshots WHERE datanet = ?1",
                [id],
                |r| r.get(0),
            )
            .map_err(&db)?;
        tx.execute(
            "INSERT INTO snapshots (datanet, version, root) VALUES (?1, ?2, ?3)",
            params![id, version, tree.root().as_slice()],
        )
        .map_err(&db)?;
        for (cid, _, _) in &members {
            tx.execute(
                "INSERT INTO snapshot_members (datanet, version, contribution) VALUES (?1, ?2, ?3)",
                params![id, version, cid],
            )
            .map_err(&db)?;
        }
        tx.commit().map_err(&db)?;
        Ok(Snapshot {
            datanet: name.into(),
            version: version as u64,
            root: tree.root(),
            contributions: members.len(),
        })
    }

    /// A snapshot's contributions, in the order they were added.
    pub fn snapshot_contents(
        &self,
        name: &str,
        version: u64,
    ) -> Result<Vec<Contribution>, DatanetError> {
        let (id, _) = self.datanet(name)?;
        self.snapshot_root(name, version)?;
        self.contributions_where(
            "c.id IN (SELECT contribution FROM snapshot_members WHERE datanet = ?1 AND version = ?2)",
            params![id, version as i64],
        )
    }

    /// Every contribution of a datanet, in the order added.
    pub fn contributions(&self, name: &str) -> Result<Vec<Contribution>, DatanetError> {
        let (id, _) = self.datanet(name)?;
        self.contributions_where("c.datanet = ?1", params![id])
    }

    fn contributions_where(
        &self,
        filter: &str,
        params: impl rusqlite::Params,
    ) -> Result<Vec<Contribution>, DatanetError> {
        let sql = format!(
            "SELECT c.content_hash, c.contributor, c.license, c.status, c.reason, c.near_duplicate_of, c.content
             FROM contributions c WHERE {filter} ORDER BY c.id"
        );
        let mut stmt = self.conn.prepare(&sql).map_err(self.db())?;
        let rows = stmt
            .query_map(params, |r| {
                Ok(Contribution {
                    content_hash: b256(r.get(0)?),
                    contributor: address(r.get(1)?),
                    license: r.get(2)?,
                    status: Status::parse(&r.get::<_, String>(3)?),
                    reason: r.get(4)?,
                    near_duplicate_of: r.get::<_, Option<Vec<u8>>>(5)?.map(b256),
                    content: r.get(6)?,
                })
            })
            .map_err(self.db())?;
        rows.collect::<Result<_, _>>().map_err(self.db())
    }

    pub fn snapshot_root(&self, name: &str, version: u64) -> Result<B256, DatanetError> {
        let (id, _) = self.datanet(name)?;
        self.conn
            .query_row(
                "SELECT root FROM snapshots WHERE datanet = ?1 AND version = ?2",
                params![id, version as i64],
                |r| Ok(b256(r.get(0)?)),
            )
            .optional()
            .map_err(self.db())?
            .ok_or_else(|| DatanetError::NoSnapshot {
                datanet: name.into(),
                version,
            })
    }

    /// The proof that a contribution is in a snapshot (siblings up to its root).
    pub fn proof(
        &self,
        name: &str,
        version: u64,
        content_hash: B256,
    ) -> Result<(Address, Vec<B256>), DatanetError> {
        let members = self.snapshot_contents(name, version)?;
        let leaves: Vec<B256> = members
            .iter()
            .map(|c| contribution_leaf(c.content_hash, c.contributor))
            .collect();
        let member = members
            .iter()
            .find(|c| c.content_hash == content_hash)
            .ok_or(DatanetError::NotInSnapshot {
                datanet: name.into(),
                version,
                hash: content_hash,
            })?;
        let tree = MerkleTree::new(leaves).expect("a snapshot is never empty");
        let proof = tree
            .proof(contribution_leaf(member.content_hash, member.contributor))
            .expect("the leaf is in the tree");
        Ok((member.contributor, proof))
    }

    pub fn summary(&self, name: &str) -> Result<Summary, DatanetError> {
        let (id, validator) = self.datanet(name)?;
        let count = |status: &str| -> Result<usize, DatanetError> {
            self.conn
                .query_row(
                    "SELECT COUNT(*) FROM contributions WHERE datanet = ?1 AND status = ?2",
                    params![id, status],
                    |r| r.get::<_, i64>(0),
                )
                .map(|n| n as usize)
                .map_err(self.db())
        };
        let mut stmt = self
            .conn
            .prepare("SELECT s.version, s.root, (SELECT COUNT(*) FROM snapshot_members m WHERE m.datanet = s.datanet AND m.version = s.version) FROM snapshots s WHERE s.datanet = ?1 ORDER BY s.version")
            .map_err(self.db())?;
        let snapshots = stmt
            .query_map([id], |r| {
                Ok(Snapshot {
                    datanet: name.into(),
                    version: r.get::<_, i64>(0)? as u64,
                    root: b256(r.get(1)?),
                    contributions: r.get::<_, i64>(2)? as usize,
                })
            })
            .map_err(self.db())?
            .collect::<Result<_, _>>()
            .map_err(self.db())?;
        Ok(Summary {
            name: name.into(),
            validator,
            pending: count("pending")?,
            accepted: count("accepted")?,
            rejected: count("rejected")?,
            snapshots,
        })
    }
}
