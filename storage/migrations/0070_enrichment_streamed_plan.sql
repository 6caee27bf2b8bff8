-- Streamed planning (issue #6): a pass is planned batch by batch, in customer id order, while its first
-- bulks are already out. planned = every profile of the dataset is a member and has its work item;
-- planned_through = the last customer id planned so far (a run that stopped mid-plan continues after it).
-- Results are applied only once a pass is planned (its member list is complete).
ALTER TABLE enrichment_passes ADD COLUMN planned BOOLEAN DEFAULT TRUE;
ALTER TABLE enrichment_passes ADD COLUMN planned_through VARCHAR;
