//! The imaginary cluster the samples happen in: nodes, workloads, people, outsiders.

/// A node (an EC2 instance with one network interface).
#[derive(Debug, Clone)]
pub struct Node {
    pub name: &'static str,
    pub ip: &'static str,
    pub eni: &'static str,
    pub instance: &'static str,
}

/// A running pod with one container.
#[derive(Debug, Clone)]
pub struct Pod {
    pub namespace: &'static str,
    pub name: &'static str,
    pub app: &'static str,
    pub ip: &'static str,
    pub node: usize,
    pub image: &'static str,
    pub container_id: &'static str,
    pub service_account: &'static str,
    pub identity: i64,
}

pub const CLUSTER: &str = "prod-eu1";
pub const ACCOUNT: &str = "123456789012";
pub const VPC: &str = "vpc-0a1b2c3d4e5f60718";
pub const SUBNET: &str = "subnet-0123456789abcdef0";
pub const REGION: &str = "eu-west-1";

pub const NODES: [Node; 3] = [
    Node {
        name: "ip-10-0-1-11.eu-west-1.compute.internal",
        ip: "10.0.1.11",
        eni: "eni-0a11b22c33d44e551",
        instance: "i-0a1b2c3d4e5f60711",
    },
    Node {
        name: "ip-10-0-1-12.eu-west-1.compute.internal",
        ip: "10.0.1.12",
        eni: "eni-0a11b22c33d44e552",
        instance: "i-0a1b2c3d4e5f60712",
    },
    Node {
        name: "ip-10-0-1-13.eu-west-1.compute.internal",
        ip: "10.0.1.13",
        eni: "eni-0a11b22c33d44e553",
        instance: "i-0a1b2c3d4e5f60713",
    },
];

pub const PODS: [Pod; 6] = [
    Pod {
        namespace: "shop",
        name: "frontend-6c8f9d7b5-m2x7q",
        app: "frontend",
        ip: "10.244.1.17",
        node: 0,
        image: "registry.example.com/shop/frontend:2.4.1",
        container_id: "3f2a9c1e5b7d4a6f8e0c2b4d6f8a0c2e4b6d8f0a2c4e6b8d0f2a4c6e8b0d2f4a",
        service_account: "frontend",
        identity: 21001,
    },
    Pod {
        namespace: "shop",
        name: "api-7d9f8b6c5-x2k4p",
        app: "api",
        ip: "10.244.1.23",
        node: 0,
        image: "registry.example.com/shop/api:5.12.0",
        container_id: "8b1d3f5a7c9e1b3d5f7a9c1e3b5d7f9a1c3e5b7d9f1a3c5e7b9d1f3a5c7e9b1d",
        service_account: "api",
        identity: 21002,
    },
    Pod {
        namespace: "shop",
        name: "postgres-0",
        app: "postgres",
        ip: "10.244.2.31",
        node: 1,
        image: "docker.io/library/postgres:16.4",
        container_id: "c4e6a8b0d2f4c6e8a0b2d4f6c8e0a2b4d6f8c0e2a4b6d8f0c2e4a6b8d0f2c4e6",
        service_account: "postgres",
        identity: 21003,
    },
    Pod {
        namespace: "payments",
        name: "billing-5b7c9d1f3-q8w2e",
        app: "billing",
        ip: "10.244.2.44",
        node: 1,
        image: "registry.example.com/payments/billing:1.9.3",
        container_id: "d5f7b9c1e3a5d7f9b1c3e5a7d9f1b3c5e7a9d1f3b5c7e9a1d3f5b7c9e1a3d5f7",
        service_account: "billing",
        identity: 22001,
    },
    Pod {
        namespace: "kube-system",
        name: "coredns-5d78c9869d-7kq2t",
        app: "kube-dns",
        ip: "10.244.3.2",
        node: 2,
        image: "registry.k8s.io/coredns/coredns:v1.11.1",
        container_id: "e6a8c0d2f4b6e8a0c2d4f6b8e0a2c4d6f8b0e2a4c6d8f0b2e4a6c8d0f2b4e6a8",
        service_account: "coredns",
        identity: 102,
    },
    Pod {
        namespace: "monitoring",
        name: "prometheus-0",
        app: "prometheus",
        ip: "10.244.3.9",
        node: 2,
        image: "quay.io/prometheus/prometheus:v2.54.1",
        container_id: "f7b9d1e3a5c7f9b1d3e5a7c9f1b3d5e7a9c1f3b5d7e9a1c3f5b7d9e1a3c5f7b9",
        service_account: "prometheus",
        identity: 23001,
    },
];

/// Index of the pod the attacker lands in.
pub const VICTIM_POD: usize = 1;

/// People and automation that use the API every day.
pub struct Human {
    pub user: &'static str,
    pub groups: &'static [&'static str],
    pub ip: &'static str,
    pub agent: &'static str,
}

pub const HUMANS: [Human; 3] = [
    Human {
        user: "alice@example.com",
        groups: &["devs", "system:authenticated"],
        ip: "198.51.100.10",
        agent: "kubectl/v1.30.2 (darwin/arm64) kubernetes/39683505",
    },
    Human {
        user: "bob@example.com",
        groups: &["sre", "system:authenticated"],
        ip: "198.51.100.11",
        agent: "kubectl/v1.29.6 (linux/amd64) kubernetes/062798d",
    },
    Human {
        user: "system:serviceaccount:ci:deployer",
        groups: &[
            "system:serviceaccounts",
            "system:serviceaccounts:ci",
            "system:authenticated",
        ],
        ip: "10.0.2.50",
        agent: "argocd-application-controller/v2.11.3",
    },
];

/// The attacker's address, download server and mining pool.
pub const ATTACKER_IP: &str = "203.0.113.66";
pub const DROPPER_IP: &str = "45.9.148.35";
pub const POOL_IP: &str = "45.9.148.36";
pub const POOL_PORT: i64 = 4444;
pub const METADATA_IP: &str = "169.254.169.254";

/// Well-known outside services the workloads talk to.
pub const PARTNER_IPS: [&str; 2] = ["3.18.12.63", "52.94.236.248"];
