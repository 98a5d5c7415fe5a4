//! Every seed passes its target's checks: the checks hold for real inputs (no false alarm for
//! the fuzzer to chase), and the seeds reach what they were written for.

use orrery_fuzz::seeds::{TARGETS, seeds};
use orrery_fuzz::targets;

fn run(target: &str, input: &[u8]) {
    match target {
        "dns_query" => targets::dns_query(input),
        "whois_line" => targets::whois_line(input),
        "rdap_path" => targets::rdap_path(input),
        "state_file" => targets::state_file(input),
        "link_message" => targets::link_message(input),
        _ => unreachable!("{target} is in TARGETS"),
    }
}

#[test]
fn every_seed_passes_its_target() {
    for target in TARGETS {
        let inputs = seeds(target).unwrap();
        assert!(inputs.len() >= 5, "{target}: {} seeds", inputs.len());
        for input in &inputs {
            run(target, input);
        }
    }
}

#[test]
fn seeds_reach_the_code_they_were_written_for() {
    // A state file seed decodes (its length and checksum are right).
    let file = &seeds("state_file").unwrap()[0];
    let reader = orrery_proto::state_file::StateFileReader::new(&file[1..]).unwrap();
    let objects: Vec<_> = reader.collect::<Result<_, _>>().unwrap();
    let data = orrery_satellite::SnapshotData::from_changes(0, objects);
    assert!(data.domains.len() > 5 && !data.contacts.is_empty());
    // The first DNS seed is answered, with its question echoed.
    let query = &seeds("dns_query").unwrap()[0];
    let zones = orrery_fuzz::fixture::zones().clone();
    let p = orrery_fuzz::fixture::dns_pipeline(zones);
    let mut ev = orrery_satellite::dns::wire::Event::new();
    let answer = targets::ask(
        &p,
        &mut ev,
        query,
        orrery_satellite::dns::wire::Transport::Udp,
    )
    .unwrap();
    let message = hickory_proto::op::Message::from_vec(&answer).unwrap();
    assert_eq!(message.queries.len(), 1);
    assert!(!message.answers.is_empty(), "tld SOA is answered");
}
