-- What analysts and the publication read. Recreated after each consolidation.
CREATE OR REPLACE VIEW marts.siae AS
SELECT structure_id, siret, siren, nom, enseigne, types, adresse, complement_adresse,
       code_postal, commune, code_insee, code_arrondissement, departement, region,
       latitude, longitude, geo_precision, geo_score, geo_source,
       telephone, courriel, site_web, date_maj, sources
FROM core.structures
WHERE coalesce(etat_administratif, 'A') <> 'F';   -- closed places stay in core.structures

-- Places a source says are closed: kept with their closing date, never published.
CREATE OR REPLACE VIEW marts.siae_fermees AS
SELECT structure_id, siret, nom, commune, departement, date_fermeture, sources
FROM core.structures
WHERE etat_administratif = 'F';

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
