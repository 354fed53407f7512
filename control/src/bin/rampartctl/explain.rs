//! `rampartctl explain --src … --dst … --proto … --dport …` against a policy file (`--file`),
//! a running node (`--node HOST:PORT`, its management endpoint), or both: then the node's
//! answer (enforced generation, matching rule, the flow's conntrack entry) is followed by what
//! the given file would do instead.

use std::net::IpAddr;
use std::path::PathBuf;
use std::process::ExitCode;
use std::time::Duration;

use anyhow::{bail, Context};
use rampart_classify::{PacketDirection, Ruleset};
use rampart_config::policy::PolicyDocument;
use rampart_control::live::{parse_proto, LiveExplanation, PacketQuery};
use rampart_control::stats;

use crate::flows;

/// Arguments of `explain`.
#[derive(clap::Args)]
pub struct Args {
    /// Policy document to evaluate against (with --node: the policy to compare with).
    #[arg(long)]
    pub file: Option<PathBuf>,
    /// A running node's management endpoint (its `control.metrics_listen`).
    #[arg(long)]
    pub node: Option<String>,
    /// Source address.
    #[arg(long)]
    pub src: IpAddr,
    /// Destination address.
    #[arg(long)]
    pub dst: IpAddr,
    /// Protocol: tcp, udp, icmp, icmpv6, sctp or a number.
    #[arg(long, default_value = "tcp")]
    pub proto: String,
    /// Source port.
    #[arg(long, default_value_t = 0)]
    pub sport: u16,
    /// Destination port.
    #[arg(long, default_value_t = 0)]
    pub dport: u16,
    /// ICMP type (ICMP/ICMPv6; carried in the source-port field).
    #[arg(long)]
    pub icmp_type: Option<u8>,
    /// ICMP code (carried in the destination-port field).
    #[arg(long)]
    pub icmp_code: Option<u8>,
    /// 802.1Q VLAN id.
    #[arg(long)]
    pub vlan: Option<u16>,
    /// VXLAN VNI.
    #[arg(long)]
    pub vni: Option<u32>,
    /// Direction of the packet: in or out.
    #[arg(long, default_value = "in")]
    pub direction: String,
}

impl Args {
    /// The packet the arguments describe.
    pub fn packet(&self) -> anyhow::Result<PacketQuery> {
        Ok(PacketQuery {
            src: self.src,
            dst: self.dst,
            proto: parse_proto(&self.proto).map_err(anyhow::Error::msg)?,
            sport: self.sport,
            dport: self.dport,
            icmp_type: self.icmp_type,
            icmp_code: self.icmp_code,
            vlan: self.vlan,
            vni: self.vni,
            direction: match self.direction.as_str() {
                "in" => PacketDirection::In,
                "out" => PacketDirection::Out,
                d => bail!("--direction must be in or out, not {d:?}"),
            },
        })
    }
}

pub fn run(a: &Args) -> anyhow::Result<ExitCode> {
    if a.file.is_none() && a.node.is_none() {
        bail!("give --file POLICY, --node HOST:PORT, or both");
    }
    let q = a.packet()?;
    let fields = q.fields().map_err(anyhow::Error::msg)?;
    if let Some(node) = &a.node {
        let body = stats::fetch(
            node,
            &format!("/explain?{}", q.to_query()),
            Duration::from_secs(10),
        )?;
        let live: LiveExplanation = serde_json::from_str(&body)
            .with_context(|| format!("unexpected answer from {node}: {body}"))?;
        println!("node {node}, enforced generation {}:", live.generation);
        print!("{}", live.text);
        match (&live.flows_error, live.flows.is_empty()) {
            (Some(e), _) => println!("conntrack: not available ({e})"),
            (None, true) => println!("conntrack: no flow for this packet"),
            (None, false) => {
                println!("conntrack:");
                print!("{}", flows::table(&live.flows));
            }
        }
    }
    if let Some(file) = &a.file {
        let doc = PolicyDocument::from_path(file)
            .with_context(|| format!("reading {}", file.display()))?;
        let policy = match doc.validate_standalone() {
            Ok(p) => p,
            Err(errs) => {
                eprintln!("{}: invalid policy:\n{errs}", file.display());
                return Ok(ExitCode::FAILURE);
            }
        };
        let rs = Ruleset::compile(&policy)?;
        if a.node.is_some() {
            println!("\nwith {} instead:", file.display());
        }
        print!("{}", rs.explain(&fields));
    }
    Ok(ExitCode::SUCCESS)
}
