//! The `after` dependency graph of a project (petgraph): start order, stop order, the jobs a job
//! needs, and cycles named job by job. Pure: names in, names out.

use petgraph::algo::{tarjan_scc, toposort};
use petgraph::graphmap::DiGraphMap;
use std::collections::{BTreeMap, BTreeSet};

/// Edges point from a dependency to the job that waits for it.
pub struct Graph<'a> {
    g: DiGraphMap<&'a str, ()>,
    /// The jobs, by name: the graph's nodes.
    deps: &'a BTreeMap<String, Vec<String>>,
}

impl<'a> Graph<'a> {
    /// `deps` maps each job to the jobs it starts after. Unknown names are ignored here (they are
    /// reported where the file is checked).
    pub fn new(deps: &'a BTreeMap<String, Vec<String>>) -> Graph<'a> {
        let mut g = DiGraphMap::new();
        for name in deps.keys() {
            g.add_node(name.as_str());
        }
        for (name, after) in deps {
            for dep in after {
                if deps.contains_key(dep) {
                    g.add_edge(dep.as_str(), name.as_str(), ());
                }
            }
        }
        Graph { g, deps }
    }

    /// Every cycle, each as the names of the jobs in it (sorted), so an error can name them all.
    pub fn cycles(&self) -> Vec<Vec<&'a str>> {
        let mut cycles: Vec<Vec<&str>> = tarjan_scc(&self.g)
            .into_iter()
            .filter(|scc| scc.len() > 1 || self.g.contains_edge(scc[0], scc[0]))
            .map(|mut scc| {
                scc.sort_unstable();
                scc
            })
            .collect();
        cycles.sort();
        cycles
    }

    /// Dependencies before dependents; None if there is a cycle.
    pub fn start_order(&self) -> Option<Vec<&'a str>> {
        toposort(&self.g, None).ok()
    }

    /// The named jobs and everything they need, transitively.
    pub fn with_dependencies(&self, names: &[String]) -> BTreeSet<&'a str> {
        let mut out = BTreeSet::new();
        // Looked up, not searched for among the nodes: `up` names every job of the file here.
        let mut stack: Vec<&str> =
            names.iter().filter_map(|n| self.deps.get_key_value(n).map(|(m, _)| m.as_str())).collect();
        while let Some(n) = stack.pop() {
            if out.insert(n) {
                stack.extend(self.g.neighbors_directed(n, petgraph::Direction::Incoming));
            }
        }
        out
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use proptest::prelude::*;

    fn deps(list: &[(&str, &[&str])]) -> BTreeMap<String, Vec<String>> {
        list.iter().map(|(n, d)| (n.to_string(), d.iter().map(|s| s.to_string()).collect())).collect()
    }

    #[test]
    fn orders_and_closures() {
        let d = deps(&[("web", &["api"]), ("api", &["db", "cache"]), ("db", &[]), ("cache", &[]), ("docs", &[])]);
        let g = Graph::new(&d);
        let order = g.start_order().unwrap();
        let pos = |n: &str| order.iter().position(|x| *x == n).unwrap();
        assert!(pos("db") < pos("api") && pos("cache") < pos("api") && pos("api") < pos("web"));
        assert_eq!(g.with_dependencies(&["api".into()]), ["api", "cache", "db"].into_iter().collect());
        assert!(g.cycles().is_empty());
    }

    #[test]
    fn cycles_name_every_job_in_them() {
        let d = deps(&[("a", &["c"]), ("b", &["a"]), ("c", &["b"]), ("d", &["d"]), ("e", &[])]);
        let g = Graph::new(&d);
        assert_eq!(g.cycles(), vec![vec!["a", "b", "c"], vec!["d"]]);
        assert!(g.start_order().is_none());
    }

    proptest! {
        /// For any acyclic `after` relation, the start order puts every dependency first.
        #[test]
        fn start_order_respects_every_edge(edges in prop::collection::vec((0usize..12, 0usize..12), 0..30)) {
            let mut d: BTreeMap<String, Vec<String>> = (0..12).map(|i| (format!("j{i}"), vec![])).collect();
            for (a, b) in edges {
                // Only edges from a lower to a higher index: acyclic by construction.
                if a < b {
                    d.get_mut(&format!("j{b}")).unwrap().push(format!("j{a}"));
                }
            }
            let g = Graph::new(&d);
            let order = g.start_order().expect("acyclic");
            for (name, after) in &d {
                for dep in after {
                    let p = |n: &str| order.iter().position(|x| *x == n).unwrap();
                    prop_assert!(p(dep) < p(name), "{dep} must start before {name}");
                }
            }
        }
    }
}
