//! `wanllmdb artifact lineage`: where a version came from and where it went, as trees.

use std::collections::HashSet;
use std::fmt::Write as _;

use wanllmdb_api_types::artifacts::{Lineage, LineageNode};

/// Upstream (what the version was made from) and downstream (what was made with it), each as
/// an indented tree under the version.
pub fn render(lineage: &Lineage) -> String {
    let Some(root) = lineage.nodes.iter().find(|n| n.depth == 0) else {
        return "no lineage recorded\n".into();
    };
    let mut out = String::new();
    for (title, up) in [("upstream", true), ("downstream", false)] {
        let _ = writeln!(out, "{title}");
        let _ = writeln!(out, "{}", node_text(root));
        let mut seen = HashSet::from([root.id.as_str()]);
        let before = out.len();
        branch(lineage, root, up, "", &mut seen, &mut out);
        if out.len() == before {
            let _ = writeln!(out, "└── (nothing recorded)");
        }
    }
    out
}

fn node_text(n: &LineageNode) -> String {
    if n.kind == "run" {
        let id = n.id.strip_prefix("run:").unwrap_or(&n.id);
        format!("run {} ({id}, {})", n.label, n.project)
    } else {
        format!("{}/{}", n.project, n.label)
    }
}

/// How a child relates to its parent, in the direction walked.
fn relation(child: &LineageNode, up: bool) -> &'static str {
    match (child.kind == "run", up) {
        (true, true) => "logged by",
        (false, true) => "used",
        (true, false) => "used by",
        (false, false) => "logged",
    }
}

fn branch<'a>(
    l: &'a Lineage,
    node: &LineageNode,
    up: bool,
    indent: &str,
    seen: &mut HashSet<&'a str>,
    out: &mut String,
) {
    let children: Vec<&LineageNode> = l
        .edges
        .iter()
        .filter_map(|e| {
            let (near, far) = if up {
                (&e.to, &e.from)
            } else {
                (&e.from, &e.to)
            };
            (*near == node.id).then_some(far)
        })
        .filter_map(|id| l.nodes.iter().find(|n| n.id == *id))
        .collect();
    for (i, child) in children.iter().enumerate() {
        let last = i + 1 == children.len();
        let (elbow, pipe) = if last {
            ("└── ", "    ")
        } else {
            ("├── ", "│   ")
        };
        let again = !seen.insert(child.id.as_str());
        let _ = writeln!(
            out,
            "{indent}{elbow}{} {}{}",
            relation(child, up),
            node_text(child),
            if again { " (shown above)" } else { "" }
        );
        if !again {
            branch(l, child, up, &format!("{indent}{pipe}"), seen, out);
        }
    }
}

#[cfg(test)]
mod tests {
    use wanllmdb_api_types::artifacts::LineageEdge;

    use super::*;

    fn node(id: &str, kind: &str, label: &str, depth: i32) -> LineageNode {
        LineageNode {
            id: id.into(),
            kind: kind.into(),
            label: label.into(),
            project: wanllmdb_api_types::ProjectName::parse("p").unwrap(),
            depth,
        }
    }

    fn edge(from: &str, to: &str, relation: &str) -> LineageEdge {
        LineageEdge {
            from: from.into(),
            to: to.into(),
            relation: relation.into(),
        }
    }

    #[test]
    fn upstream_reads_as_a_tree() {
        let l = Lineage {
            produced_by: None,
            used_by: Vec::new(),
            nodes: vec![
                node("artifact:p/model:v2", "artifact_version", "model:v2", 0),
                node("run:train001", "run", "train", -1),
                node("artifact:p/data:v1", "artifact_version", "data:v1", -2),
                node("artifact:p/vocab:v4", "artifact_version", "vocab:v4", -2),
                node("run:prep0001", "run", "prep", -3),
                node("run:eval0001", "run", "eval", 1),
            ],
            edges: vec![
                edge("run:train001", "artifact:p/model:v2", "produced"),
                edge("artifact:p/data:v1", "run:train001", "used"),
                edge("artifact:p/vocab:v4", "run:train001", "used"),
                edge("run:prep0001", "artifact:p/data:v1", "produced"),
                edge("artifact:p/model:v2", "run:eval0001", "used"),
            ],
        };
        let text = render(&l);
        assert_eq!(
            text,
            "upstream\n\
             p/model:v2\n\
             └── logged by run train (train001, p)\n    \
             ├── used p/data:v1\n    \
             │   └── logged by run prep (prep0001, p)\n    \
             └── used p/vocab:v4\n\
             downstream\n\
             p/model:v2\n\
             └── used by run eval (eval0001, p)\n"
        );
    }
}
