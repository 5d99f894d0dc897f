//! kubetrail-detections: the detection rule engine lives here (not yet implemented; see
//! this folder's README).
