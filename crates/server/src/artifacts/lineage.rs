//! Lineage: the runs that logged and used versions, walked upstream and downstream into a
//! graph, and the artifacts of one run.

use super::*;
use wanllmdb_api_types::RunId;

impl Artifacts<'_> {
    /// Records that a run used a version as an input.
    pub async fn use_version(
        &self,
        actor: &Actor,
        project: &ProjectName,
        name: &str,
        spec: &str,
        run_id: &RunId,
    ) -> ApiResult<ArtifactVersion> {
        let access = self.access(actor, project).await?;
        let art = self.load(&access, name).await?;
        let v = self.resolve(&art, spec).await?;
        let (run, _) = Runs { state: self.state }
            .load_for_write(actor, run_id)
            .await?;
        store::insert_usage(self.store(), v.id, run.pk, now_us()).await?;
        self.one_api(v).await
    }

    /// Which projects (by id) the caller may read, memoised.
    async fn readable(
        &self,
        actor: &Actor,
        cache: &mut HashMap<i64, bool>,
        project_id: i64,
    ) -> bool {
        if let Some(b) = cache.get(&project_id) {
            return *b;
        }
        let ok = match (Projects { state: self.state })
            .access_by_id(actor, project_id)
            .await
        {
            Ok(a) => a.require_read().is_ok(),
            Err(_) => false,
        };
        cache.insert(project_id, ok);
        ok
    }

    /// Who produced and used a version, and the lineage graph around it up to `depth` hops
    /// each way (runs and versions the caller may not read are left out).
    pub async fn lineage(
        &self,
        actor: &Actor,
        project: &ProjectName,
        name: &str,
        spec: &str,
        depth: u32,
    ) -> ApiResult<Lineage> {
        let access = self.access(actor, project).await?;
        let art = self.load(&access, name).await?;
        let start = self.resolve(&art, spec).await?;
        let depth = depth.clamp(1, MAX_DEPTH) as i32;
        let mut readable = HashMap::new();
        let mut nodes: Vec<LineageNode> = Vec::new();
        let mut seen: HashSet<String> = HashSet::new();
        let mut edges: BTreeSet<(String, String, &'static str)> = BTreeSet::new();
        let vnode = |v: &VersionRow, d: i32| LineageNode {
            id: format!("artifact:{}/{}", v.project, v.label()),
            kind: "artifact_version".into(),
            label: v.label(),
            project: v.project.clone(),
            depth: d,
        };
        let rnode = |r: &LineageRun, d: i32| LineageNode {
            id: format!("run:{}", r.id),
            kind: "run".into(),
            label: r.name.clone(),
            project: r.project.clone(),
            depth: d,
        };
        let first = vnode(&start, 0);
        seen.insert(first.id.clone());
        nodes.push(first);
        let mut produced_by = None;
        let mut used_by = Vec::new();
        for direction in [-1i32, 1] {
            // Alternating layers: versions at even hops, runs at odd hops.
            let mut versions = vec![start.id];
            let mut runs: Vec<i64> = Vec::new();
            for hop in 1..=depth {
                if nodes.len() >= MAX_NODES {
                    break;
                }
                let d = hop * direction;
                if hop % 2 == 1 {
                    // versions → runs (producers upstream, users downstream)
                    let links = if direction < 0 {
                        store::producers_of(self.store(), &versions).await?
                    } else {
                        store::users_of(self.store(), &versions).await?
                    };
                    let pks: Vec<i64> = links.iter().map(|l| l.1).collect();
                    let info = store::lineage_runs(self.store(), &pks).await?;
                    let vinfo = store::committed_versions_in(self.store(), &versions).await?;
                    runs.clear();
                    for (vid, pk) in links {
                        let (Some((pid, run)), Some(v)) = (info.get(&pk), vinfo.get(&vid)) else {
                            continue;
                        };
                        if !self.readable(actor, &mut readable, *pid).await {
                            continue;
                        }
                        let rn = rnode(run, d);
                        let vid_s = format!("artifact:{}/{}", v.project, v.label());
                        if hop == 1 {
                            if direction < 0 {
                                produced_by = Some(run.clone());
                            } else {
                                used_by.push(run.clone());
                            }
                        }
                        if direction < 0 {
                            edges.insert((rn.id.clone(), vid_s, "produced"));
                        } else {
                            edges.insert((vid_s, rn.id.clone(), "used"));
                        }
                        if seen.insert(rn.id.clone()) && nodes.len() < MAX_NODES {
                            nodes.push(rn);
                            runs.push(pk);
                        }
                    }
                    if runs.is_empty() {
                        break;
                    }
                } else {
                    // runs → versions (inputs upstream, outputs downstream)
                    let links = if direction < 0 {
                        store::inputs_of(self.store(), &runs).await?
                    } else {
                        store::outputs_of(self.store(), &runs).await?
                    };
                    let vids: Vec<i64> = links.iter().map(|l| l.1).collect();
                    let vinfo = store::committed_versions_in(self.store(), &vids).await?;
                    let rinfo = store::lineage_runs(self.store(), &runs).await?;
                    versions.clear();
                    for (pk, vid) in links {
                        let (Some(v), Some((_, run))) = (vinfo.get(&vid), rinfo.get(&pk)) else {
                            continue;
                        };
                        if !self.readable(actor, &mut readable, v.project_id).await {
                            continue;
                        }
                        let vn = vnode(v, d);
                        let rid = format!("run:{}", run.id);
                        if direction < 0 {
                            edges.insert((vn.id.clone(), rid, "used"));
                        } else {
                            edges.insert((rid, vn.id.clone(), "produced"));
                        }
                        if seen.insert(vn.id.clone()) && nodes.len() < MAX_NODES {
                            nodes.push(vn);
                            versions.push(vid);
                        }
                    }
                    if versions.is_empty() {
                        break;
                    }
                }
            }
        }
        used_by.sort_by(|a, b| a.id.cmp(&b.id));
        Ok(Lineage {
            produced_by,
            used_by,
            nodes,
            edges: edges
                .into_iter()
                .map(|(from, to, relation)| LineageEdge {
                    from,
                    to,
                    relation: relation.into(),
                })
                .collect(),
        })
    }

    /// What a run used and produced (versions the caller may read).
    pub async fn of_run(&self, actor: &Actor, run_id: &RunId) -> ApiResult<RunArtifacts> {
        let (run, _) = Runs { state: self.state }.load(actor, run_id).await?;
        let mut readable = HashMap::new();
        let used = store::versions_used_by(self.store(), run.pk).await?;
        let produced = store::versions_logged_by(self.store(), run.pk).await?;
        let mut lists = [Vec::new(), Vec::new()];
        for (i, rows) in [used, produced].into_iter().enumerate() {
            for r in rows {
                if self.readable(actor, &mut readable, r.project_id).await {
                    lists[i].push(r);
                }
            }
        }
        let [used, produced] = lists;
        Ok(RunArtifacts {
            used: self.to_api(used).await?,
            produced: self.to_api(produced).await?,
        })
    }
}
