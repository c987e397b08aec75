-- What analysts read. Recreated after each consolidation. marts.siae, the published fields,
-- is written from the field table (warehouse/db.py: siae_view_sql).

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
SELECT region, departement, kind, count(*) AS structures,
       count(*) FILTER (WHERE latitude IS NOT NULL) AS sur_la_carte
FROM (SELECT region, departement, latitude, UNNEST(types) AS kind FROM core.structures)
GROUP BY ALL
ORDER BY region, departement, kind;

-- The origin of every field of every published structure (one row per field).
CREATE OR REPLACE VIEW marts.siae_provenance AS
SELECT structure_id, key AS field, value ->> '$' AS source
FROM core.structures, json_each(provenance);

-- How complete each source is, on the records merged by the last consolidation: a guide to
-- which source to trust for what, and what to ask a partner to fill in.
CREATE OR REPLACE VIEW marts.sources_completude AS
SELECT source, count(*) AS records,
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
