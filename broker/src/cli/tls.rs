//! `switchyard tls ca` / `tls cert NAME`: a CA and broker certificates
//! signed by it, for deployments of several brokers that verify each
//! other (and their clients verify them) with one CA. A single broker
//! needs neither: it makes a development CA in its data dir.

use std::path::{Path, PathBuf};

use anyhow::{anyhow, bail};
use clap::Subcommand;

use crate::server::{CA_CERT, CA_KEY, create_ca, issue};

#[derive(Subcommand)]
pub enum TlsCommand {
    /// Create a CA: ca.pem (every broker and client trusts it) and ca.key
    /// (keep it secret: it signs broker certificates). Never overwrites.
    Ca {
        /// Directory to write ca.pem and ca.key into (created if missing).
        #[arg(long, value_name = "DIR")]
        out: PathBuf,
        /// The CA's common name.
        #[arg(long, default_value = "Switchyard CA")]
        name: String,
    },
    /// Issue a broker certificate signed by a CA from `tls ca`: NAME.pem
    /// and NAME.key, for serving and for connecting to other brokers.
    Cert {
        /// The certificate's common name and file name.
        name: String,
        /// The CA's directory (with ca.pem and ca.key).
        #[arg(long, value_name = "DIR")]
        ca: PathBuf,
        /// A DNS name or IP address the broker is reached at (repeatable).
        #[arg(long = "host", value_name = "HOST", required = true)]
        hosts: Vec<String>,
        /// Directory to write NAME.pem and NAME.key into (created if
        /// missing).
        #[arg(long, value_name = "DIR")]
        out: PathBuf,
    },
}

pub fn run(command: TlsCommand) -> anyhow::Result<()> {
    match command {
        TlsCommand::Ca { out, name } => {
            let (cert, key) = create_ca(&out, &name).map_err(|e| anyhow!(e))?;
            println!(
                "wrote {} (the CA certificate: brokers and clients trust it)",
                shown(&cert)
            );
            println!(
                "wrote {} (the CA key: keep it secret; it signs broker certificates)",
                shown(&key)
            );
        }
        TlsCommand::Cert {
            name,
            ca,
            hosts,
            out,
        } => {
            let (ca_cert, ca_key) = (ca.join(CA_CERT), ca.join(CA_KEY));
            for file in [&ca_cert, &ca_key] {
                if !file.exists() {
                    bail!(
                        "--ca {}: {} does not exist (create a CA with `switchyard tls ca --out DIR`)",
                        ca.display(),
                        file.display()
                    );
                }
            }
            let (cert, key) =
                issue(&ca_cert, &ca_key, &name, &hosts, &out).map_err(|e| anyhow!(e))?;
            let (cert, key) = (shown(&cert), shown(&key));
            println!("wrote {cert} (the certificate)");
            println!("wrote {key} (its key: keep it secret)");
            println!("serve with: switchyard serve --set tls.cert={cert} --set tls.key={key}");
            println!("clients and other brokers: --ca {}", shown(&ca_cert));
        }
    }
    Ok(())
}

/// A written file's path as a command run elsewhere can use it.
fn shown(path: &Path) -> String {
    std::path::absolute(path)
        .unwrap_or_else(|_| path.to_path_buf())
        .display()
        .to_string()
}
