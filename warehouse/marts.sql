-- What analysts read. Recreated after each consolidation. marts.siae, the published fields,
-- is written from the field table (warehouse/db.py: siae_view_sql).
-- Marts speak French throughout (as the published fields do), except the identifiers shared
-- with the other layers (structure_id, run_id, release_id); every column has a comment
-- (warehouse/comments.py: MART_COLUMNS).

-- Places a source says are closed: kept with their closing date, never published.
CREATE OR REPLACE VIEW marts.siae_fermees AS
SELECT structure_id, siret, nom, commune, departement, date_fermeture, sources
FROM core.structures
WHERE etat_administratif = 'F';

-- Places whose kinds no source confirms (an establishment of a company with several, known
-- only through the company's kinds): kept, not published until another source confirms them.
CREATE OR REPLACE VIEW marts.siae_types_a_confirmer AS
SELECT structure_id, siret, nom, commune, departement, types_candidats, sources
FROM core.structures
WHERE len(types) = 0 AND coalesce(etat_administratif, 'A') <> 'F';

-- Structures per département and kind (a structure with two kinds counts in both).
CREATE OR REPLACE VIEW marts.siae_par_departement AS
SELECT region, departement, type, count(*) AS structures,
       count(*) FILTER (WHERE latitude IS NOT NULL) AS sur_la_carte
FROM (SELECT region, departement, latitude, UNNEST(types) AS type FROM core.structures)
GROUP BY ALL
ORDER BY region, departement, type;

-- The origin of every field of every published structure (one row per field).
CREATE OR REPLACE VIEW marts.siae_provenance AS
SELECT structure_id, key AS champ, value ->> '$' AS source
FROM core.structures, json_each(provenance);

-- How complete each source is, on the records merged by the last consolidation: a guide to
-- which source to trust for what, and what to ask a partner to fill in.
CREATE OR REPLACE VIEW marts.sources_completude AS
SELECT source, count(*) AS enregistrements,
       round(avg((siret IS NOT NULL AND NOT regexp_matches(siret, '999[0-9]{2}$'))::INT), 3)
           AS part_siret,
       round(avg((adresse IS NOT NULL)::INT), 3) AS part_adresse,
       round(avg((code_insee IS NOT NULL)::INT), 3) AS part_commune,
       round(avg((latitude IS NOT NULL)::INT), 3) AS part_coordonnees,
       round(avg((telephone IS NOT NULL)::INT), 3) AS part_telephone,
       round(avg((courriel IS NOT NULL)::INT), 3) AS part_courriel,
       round(avg((site_web IS NOT NULL)::INT), 3) AS part_site_web,
       max(date_maj) AS date_maj_max
FROM core.records
GROUP BY source
ORDER BY source;

-- Open positions (les emplois de l'inclusion), with the structure's kinds and where it is:
-- who recruits, for which job (ROME code), where.
CREATE OR REPLACE VIEW marts.postes_ouverts AS
SELECT p.rome, p.appellation, s.structure_id, s.nom, s.types, s.commune, s.departement,
       s.region, p.cree_le, p.mis_a_jour_le, p.source
FROM core.postes p JOIN core.structures s USING (structure_id)
WHERE p.recrutement_ouvert AND coalesce(s.etat_administratif, 'A') <> 'F'
ORDER BY s.departement, p.rome, s.nom;

-- Every publication swapped in (the log is ops.publications): when, counts, what changed,
-- each file's bytes and sha256.
CREATE OR REPLACE VIEW marts.publications AS
SELECT release_id, published_at AS publiee_le, structures, features AS points,
       added AS ajoutees, removed AS retirees, moved AS deplacees, changed AS modifiees,
       files AS fichiers, previous AS precedente
FROM ops.publications
ORDER BY published_at DESC;

-- The pairs of records awaiting an analyst's decision (the matcher's review band, not yet in
-- the judgements file), both sides' names and addresses side by side, best score first:
-- what `siae review` asks about, for a spreadsheet or a notebook.
CREATE OR REPLACE VIEW marts.doublons_a_verifier AS
SELECT round(c.score, 3) AS score,
       la.structure_id AS structure_id_a, c.left_source AS source_a,
       c.left_source_id AS id_source_a, a.nom AS nom_a, a.adresse AS adresse_a,
       a.code_postal AS code_postal_a, a.commune AS commune_a, a.siret AS siret_a,
       a.types AS types_a,
       lb.structure_id AS structure_id_b, c.right_source AS source_b,
       c.right_source_id AS id_source_b, b.nom AS nom_b, b.adresse AS adresse_b,
       b.code_postal AS code_postal_b, b.commune AS commune_b, b.siret AS siret_b,
       b.types AS types_b,
       c.features AS indices
FROM core.match_candidates c
JOIN core.records a ON a.source = c.left_source AND a.source_id = c.left_source_id
JOIN core.records b ON b.source = c.right_source AND b.source_id = c.right_source_id
LEFT JOIN core.links la ON la.source = c.left_source AND la.source_id = c.left_source_id
LEFT JOIN core.links lb ON lb.source = c.right_source AND lb.source_id = c.right_source_id
WHERE c.band = 'review' AND NOT EXISTS (
    SELECT 1 FROM core.judgements j
    WHERE (j.left_source, j.left_source_id, j.right_source, j.right_source_id)
              IN ((c.left_source, c.left_source_id, c.right_source, c.right_source_id),
                  (c.right_source, c.right_source_id, c.left_source, c.left_source_id)))
ORDER BY c.score DESC, c.left_source, c.left_source_id, c.right_source, c.right_source_id;
